"""Which kernels a forward pass runs, named by theory's op table, at the model's own shapes.

A kernel is (op, implementation, dtype, shape); how many instances of it a pass runs comes from
theory.ops.count_ops (`count`), so a composed time and a roofline time add up over the same op rows.
Shapes follow transformers' Llama code as it runs (models/llama/modeling_llama.py,
integrations/sdpa_attention.py, cache_utils.py):
- linears are (tokens, in, out); lm_head runs on the last token of each sequence (logits_to_keep=1);
- the sdpa core sees (batch, heads, kv_heads, query len, key len, head_dim) and a mask kind: none for a dynamic
  cache, a boolean mask over every slot of a static cache in decode; a static cache's empty prefill is sliced
  to the prompt (sdpa_attention_forward); eager always adds a float mask;
- the dynamic cache's update concatenates the whole layer cache (torch.cat); the static one index-copies.
"""
from dataclasses import dataclass

from theory.calibration.interp import as_run_workload
from theory.model import ModelSpec
from theory.ops import Workload, count_ops


@dataclass(frozen=True, slots=True)
class Kernel:
    op: str            # theory op name
    impl: str          # linear | embedding | rmsnorm | rotary | cat | index_copy | sdpa | eager pieces | add | silu_mul
    dtype: str
    shape: tuple       # ((name, value), ...)

    @property
    def dims(self) -> dict:
        return dict(self.shape)

    def shape_text(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.shape)


@dataclass(frozen=True, slots=True)
class PassShape:
    """One forward pass of a point: what theory and transformers need to name its kernels."""
    spec: ModelSpec
    phase: str
    batch: int
    query_len: int        # prompt_len in prefill, 1 in decode
    past_len: int         # tokens in the cache before this pass
    dtype: str
    attention: str        # sdpa | eager
    cache: str            # dynamic | static
    max_cache_len: int | None = None

    def workload(self) -> Workload:
        return as_run_workload(self.phase, self.batch, self.query_len, self.past_len, self.dtype, self.attention,
                               self.cache, self.max_cache_len,
                               self.spec.num_key_value_heads < self.spec.num_attention_heads)


def _k(op, impl, dtype, **shape) -> Kernel:
    return Kernel(op, impl, dtype, tuple(shape.items()))


def key_len(p: PassShape) -> int:
    """Keys the attention kernel sees in this pass."""
    if p.cache == "static" and not (p.phase == "prefill" and p.attention == "sdpa"):
        return p.max_cache_len
    total = p.past_len + p.query_len
    w = p.spec.sliding_window
    return total if w is None else min(total, w)


def mask_kind(p: PassShape) -> str:
    if p.attention == "eager":
        return "float"
    if p.cache == "static" and p.phase == "decode":
        return "bool"
    return "causal" if p.query_len > 1 else "none"


def kernel_for(op: str, p: PassShape) -> Kernel | None:
    s, dt = p.spec, p.dtype
    B, tq, n = p.batch, p.query_len, p.batch * p.query_len
    h, kvh, hd, d, f = (s.num_attention_heads, s.num_key_value_heads, s.head_dim, s.hidden_size,
                        s.intermediate_size)
    S = key_len(p)
    linears = {"q_proj": (d, s.q_dim), "k_proj": (d, s.kv_dim), "v_proj": (d, s.kv_dim), "o_proj": (s.q_dim, d),
               "gate_proj": (d, f), "up_proj": (d, f), "down_proj": (f, d)}
    if op in linears:
        k_in, k_out = linears[op]
        return _k(op, "linear", dt, tokens=n, k_in=k_in, k_out=k_out)
    if op == "lm_head":
        return _k(op, "linear", dt, tokens=B, k_in=d, k_out=s.vocab_size)
    if op == "embedding":
        return _k(op, "embedding", dt, tokens=n, vocab=s.vocab_size, hidden=d)
    if op in ("input_norm", "post_attention_norm", "final_norm"):
        return _k("norm", "rmsnorm", dt, tokens=n, hidden=d)
    if op == "residual_add":
        return _k(op, "add", dt, tokens=n, hidden=d)
    if op == "act_mul":
        return _k(op, "silu_mul", dt, tokens=n, inter=f)
    if op == "rotary":
        return _k(op, "rotary", dt, batch=B, heads=h, kv_heads=kvh, query=tq, head_dim=hd)
    if op == "kv_update":
        if p.cache == "static":
            return _k(op, "index_copy", dt, batch=B, kv_heads=kvh, slots=p.max_cache_len, query=tq, head_dim=hd)
        past = S - tq if p.spec.sliding_window is None else p.past_len
        return _k(op, "cat", dt, batch=B, kv_heads=kvh, past=past, query=tq, head_dim=hd)
    attn = dict(batch=B, heads=h, kv_heads=kvh, query=tq, keys=S, head_dim=hd, mask=mask_kind(p))
    if op == "attn_core":
        return _k(op, "sdpa", dt, **attn)
    if op == "repeat_kv":
        return _k(op, "repeat_kv", dt, batch=B, heads=h, kv_heads=kvh, keys=S, head_dim=hd)
    if op in ("attn_scores", "attn_softmax", "attn_values"):
        return _k(op, op.removeprefix("attn_"), dt, **attn)
    return None


def pass_kernels(p: PassShape) -> list[tuple[str, int, Kernel]]:
    """(theory op, instances, kernel) for every op theory counts in this pass."""
    out = []
    for row in count_ops(p.spec, p.workload()):
        k = kernel_for(row.name, p)
        if k is None:
            raise ValueError(f"no kernel for op {row.name!r} (bench runs Llama-style models only)")
        out.append((row.name, row.count, k))
    return out
