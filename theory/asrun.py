""""As run": how transformers really runs bench's choices, in theory's workload terms. The one place for it:
bench records it in every row (`recorded_terms`), theory's calibration predicts from it (`workload_terms`) and
analysis joins on it (`row_workload_terms`), and the child timeout's budget sums it (bench/launch/budget.py).

- sdpa is a fused attention core; eager materializes the scores and, for GQA, repeats K/V for every head;
- HF's dynamic cache concatenates (copies) itself every step; a static cache is read through its mask (every
  max_cache_len slot), except the prefill under sdpa, which slices the empty static cache to the prompt and
  runs the causal kernel (transformers integrations/sdpa_attention.py): the filled slots only, an append.
  Confirmed by FlopCounterMode in profiled runs; eager attends every max_cache_len slot.
- logits: only the last position's (bench calls the model with logits_to_keep=1)."""
from theory.ops import Workload


def recorded_terms(attention: str, cache: str, max_cache_len: int | None, gqa: bool) -> dict:
    """The as-run columns bench records for a point (phase-independent): attention "sdpa" | "eager", cache
    "dynamic" | "static"; gqa: fewer key/value heads than query heads."""
    eager = attention == "eager"
    return {"theory_attention": "materialized" if eager else "fused",
            "kv_update": "static" if cache == "static" else "copy",
            "max_cache_len": max_cache_len, "logits": "last", "repeat_kv": int(eager and gqa)}


def row_workload_terms(phase: str, theory_attention: str, kv_update: str, max_cache_len: int | None,
                       repeat_kv: bool, logits: str = "last") -> dict:
    """Workload keyword arguments of one pass from the recorded columns: the static-prefill rule applied."""
    if kv_update == "static" and phase == "prefill" and theory_attention == "fused":
        kv_update = "append"
    return {"attention": theory_attention, "kv_update": kv_update,
            "max_cache_len": max_cache_len if kv_update == "static" else None, "logits": logits,
            "repeat_kv": bool(repeat_kv)}


def workload_terms(phase: str, attention: str, cache: str, max_cache_len: int | None, gqa: bool) -> dict:
    """Workload keyword arguments of one pass from bench's choices (attention "sdpa" | "eager", cache)."""
    r = recorded_terms(attention, cache, max_cache_len, gqa)
    return row_workload_terms(phase, r["theory_attention"], r["kv_update"], max_cache_len, r["repeat_kv"], r["logits"])


def as_run_workload(phase: str, batch: int, query_len: int, past_len: int, dtype: str, attention: str, cache: str,
                    max_cache_len: int | None, repeat_kv: bool) -> Workload:
    """One pass as transformers runs it. repeat_kv: the model has GQA (K/V repeated when attention is eager)."""
    return Workload(phase=phase, batch=batch, dtype=dtype, prompt_len=query_len if phase == "prefill" else 0,
                    context_len=past_len, **workload_terms(phase, attention, cache, max_cache_len, repeat_kv))
