"""One "as run" mapping (theory/asrun.py): bench's rows, theory's calibration, analysis's join and the child
timeout's budget all predict the pass transformers really runs."""
from bench.launch.budget import trajectory_s
from bench.sweep import Point
from theory.asrun import as_run_workload, recorded_terms, row_workload_terms
from theory.hardware import load_hardware
from theory.roofline import predict


def passes_s(p: Point, hw) -> float:
    """prefill + every decode step, each pass as run (the budget's sum of decode steps is exact below 256)."""
    spec = p.spec()
    gqa = spec.num_key_value_heads < spec.num_attention_heads
    mcl = p.max_cache_len if p.cache == "static" else None
    total = predict(spec, hw, as_run_workload("prefill", p.batch, p.prompt_len, 0, "bf16", p.attention, p.cache,
                                              mcl, gqa)).time_s
    for c in range(p.prompt_len, p.prompt_len + p.generated - 1):
        total += predict(spec, hw, as_run_workload("decode", p.batch, 1, c, "bf16", p.attention, p.cache, mcl,
                                                   gqa)).time_s
    return total


def test_budget_predicts_the_passes_as_run():
    """Before: budget.py mapped attention and cache itself and missed the static sdpa prefill (an append, not
    every max_cache_len slot) and eager GQA's repeated K/V."""
    hw = load_hardware("h100-sxm-80gb")
    for p in (Point(hidden_size=512, kv_group=4, attention="eager", prompt_len=64, generated=6),     # repeat_kv
              Point(hidden_size=512, cache="static", prompt_len=256, generated=4)):                  # static prefill
        want = passes_s(p, hw)
        assert abs(trajectory_s(p, hw) - want) <= 1e-12 * want


def test_recorded_columns_round_trip_to_the_same_workload():
    for attention, cache, phase in [(a, c, ph) for a in ("sdpa", "eager") for c in ("dynamic", "static")
                                    for ph in ("prefill", "decode")]:
        rec = recorded_terms(attention, cache, 64 if cache == "static" else None, gqa=True)
        w = as_run_workload(phase, 1, 8 if phase == "prefill" else 1, 0 if phase == "prefill" else 8, "fp32",
                            attention, cache, 64 if cache == "static" else None, True)
        terms = row_workload_terms(phase, rec["theory_attention"], rec["kv_update"], rec["max_cache_len"],
                                   bool(rec["repeat_kv"]), rec["logits"])
        assert (w.attention, w.kv_update, w.max_cache_len, w.repeat_kv) == \
            (terms["attention"], terms["kv_update"], terms["max_cache_len"], terms["repeat_kv"])
    assert row_workload_terms("prefill", "fused", "static", 64, False)["kv_update"] == "append"
    assert row_workload_terms("prefill", "materialized", "static", 64, True)["kv_update"] == "static"
