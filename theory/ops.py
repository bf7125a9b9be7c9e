"""FLOPs and bytes per operation for one forward pass: a prefill of batch x prompt_len tokens, or one
decode step at context_len (tokens already in the cache).

Step contract: a decode step at context_len S reads S+1 keys and values (its own included) and writes
one; step 0 is the first decode after prefill. All counts are totals over the layers (`count` says how
many instances ran); bytes are integers.

Conventions (each constant names its source):
- a matmul of (m x k) by (k x n) costs 2·m·k·n FLOPs (the arithmetic article, seed 002);
- weights are read once per forward whatever the batch (the ideal: perfect reuse across the batch);
- softmax costs 3 FLOPs per score (max, exp, divide; the lecture slides, seed 003).
"""
from collections import Counter
from dataclasses import dataclass

from theory.dtypes import dtype_bytes
from theory.errors import TheoryError
from theory.model import ModelSpec
from theory.moe import expected_experts_touched

SOFTMAX_FLOPS_PER_SCORE = 3      # seed 003 slides: compute = 2dN² + 3N² + 2N²d
NORM_FLOPS_PER_ELEMENT = 4       # square, sum, scale by rsqrt, scale by weight
ROTARY_FLOPS_PER_ELEMENT = 3     # x·cos + rotate_half(x)·sin
SILU_MUL_FLOPS_PER_ELEMENT = 5   # sigmoid (~3), x·sigmoid, ·up
GELU_FLOPS_PER_ELEMENT = 8       # tanh approximation, as usually counted
ADD_FLOPS_PER_ELEMENT = 1

# The one table of op names: name -> (group, runs on the matmul units). Everything downstream uses it.
OPS: dict[str, tuple[str, bool]] = {
    "embedding": ("other", False),
    "input_norm": ("other", False),
    "q_proj": ("attention", True),
    "k_proj": ("attention", True),
    "v_proj": ("attention", True),
    "rotary": ("attention", False),
    "kv_update": ("attention", False),
    "repeat_kv": ("attention", False),
    "attn_core": ("attention", True),        # fused (flash / sdpa): no score matrix in memory
    "attn_scores": ("attention", True),      # materialized (eager): Q·Kᵀ written out
    "attn_softmax": ("attention", False),
    "attn_values": ("attention", True),
    "o_proj": ("attention", True),
    "residual_add": ("other", False),
    "post_attention_norm": ("other", False),
    "gate_proj": ("mlp", True),
    "up_proj": ("mlp", True),
    "act_mul": ("mlp", False),
    "down_proj": ("mlp", True),
    "fc_in": ("mlp", True),
    "act": ("mlp", False),
    "fc_out": ("mlp", True),
    "final_norm": ("other", False),
    # Added for the wider families (theory/arch.py): names above are stable, these are additive.
    "qk_norm": ("attention", False),          # Qwen3 / Gemma-3 / Phi qk_layernorm: a norm over each head's q and k
    "router": ("mlp", True),                  # MoE gate: hidden -> E logits, every token
    "expert_gate_proj": ("mlp", True),        # the routed experts: k per token; weights read for experts touched
    "expert_up_proj": ("mlp", True),
    "expert_act_mul": ("mlp", False),
    "expert_down_proj": ("mlp", True),
    "shared_expert_gate": ("mlp", True),      # Qwen2-MoE: sigmoid gate on the shared expert (its MLP uses gate/up/down_proj)
    "lm_head": ("other", True),
    "allreduce": ("comms", False),
}
OP_GROUPS = ("attention", "mlp", "other", "comms")
PHASES = ("prefill", "decode")
ATTENTION = ("fused", "materialized")
KV_UPDATE = ("append", "copy", "static")
LOGITS = ("last", "all")


@dataclass(frozen=True, slots=True)
class Workload:
    """One forward pass. Defaults are the ideal; the other choices describe how a real implementation ran."""
    phase: str = "decode"
    batch: int = 1
    prompt_len: int = 0          # prefill: tokens in the prompt
    context_len: int = 0         # decode: tokens in the cache before this step
    dtype: str = "bf16"          # weights and matmul compute
    kv_dtype: str | None = None  # defaults to dtype
    act_dtype: str | None = None
    attention: str = "fused"     # "fused" counts T(T+1)/2 causal pairs in prefill; "materialized" the full T²
    kv_update: str = "append"    # "append" | "copy" (a growing cache copied every step) | "static"
    max_cache_len: int | None = None   # static cache: slots attention reads through its mask
    logits: str = "last"         # lm_head on the last token of each sequence, or on "all" tokens
    repeat_kv: bool = False      # eager GQA copies K/V to every query head before attention

    def __post_init__(self):
        if self.phase not in PHASES:
            raise TheoryError(f"phase must be one of {', '.join(PHASES)}, got {self.phase!r}")
        if isinstance(self.batch, bool) or not isinstance(self.batch, int) or self.batch <= 0:
            raise TheoryError(f"batch must be a positive integer, got {self.batch!r}")
        if self.phase == "prefill" and (not isinstance(self.prompt_len, int) or self.prompt_len <= 0):
            raise TheoryError(f"prompt_len must be a positive integer for prefill, got {self.prompt_len!r}")
        if not isinstance(self.context_len, int) or self.context_len < 0:
            raise TheoryError(f"context_len must be a non-negative integer, got {self.context_len!r}")
        for name, value, allowed in (("attention", self.attention, ATTENTION),
                                     ("kv_update", self.kv_update, KV_UPDATE), ("logits", self.logits, LOGITS)):
            if value not in allowed:
                raise TheoryError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
        for dt in (self.dtype, self.kv_dtype or self.dtype, self.act_dtype or self.dtype):
            dtype_bytes(dt)
        if self.kv_update == "static":
            needed = self.context_len + (self.prompt_len if self.phase == "prefill" else 1)
            if self.max_cache_len is None or self.max_cache_len < needed:
                raise TheoryError(f"a static cache needs max_cache_len >= {needed} tokens, got {self.max_cache_len}")

    @property
    def query_tokens(self) -> int:
        return self.prompt_len if self.phase == "prefill" else 1


@dataclass(frozen=True, slots=True)
class OpCount:
    name: str
    group: str
    count: int               # instances in this forward (e.g. one per layer)
    flops: int
    weight_bytes: int
    act_bytes: int           # activations read + written
    kv_read_bytes: int
    kv_write_bytes: int
    is_matmul: bool
    k_in: int = 0            # a linear's row length (the reduction dimension k); 0 for other ops, or mixed rows

    @property
    def bytes(self) -> int:
        return self.weight_bytes + self.act_bytes + self.kv_read_bytes + self.kv_write_bytes


def causal_pairs(tokens: int, window: int | None) -> int:
    """(query, key) pairs a causal mask keeps for a prompt: T(T+1)/2, or fewer under a sliding window."""
    if window is None or tokens <= window:
        return tokens * (tokens + 1) // 2
    return window * (window + 1) // 2 + (tokens - window) * window


def cached_tokens(model: ModelSpec, tokens: int, window: int | None = ...) -> int:
    """Tokens a (dynamic) cache holds after `tokens` have passed: a sliding window caps it."""
    window = model.sliding_window if window is ... else window
    return tokens if window is None else min(tokens, window)


def count_ops(model: ModelSpec, w: Workload) -> list[OpCount]:
    L, d, B = model.num_hidden_layers, model.hidden_size, w.batch
    h, hd, qd, kvd, f, V = (model.num_attention_heads, model.head_dim, model.q_dim, model.kv_dim,
                            model.intermediate_size, model.vocab_size)
    wb = dtype_bytes(w.dtype)
    kb = dtype_bytes(w.kv_dtype or w.dtype)
    ab = dtype_bytes(w.act_dtype or w.dtype)
    tq = w.query_tokens
    past = w.context_len
    n = B * tq                                   # tokens through every layer
    rows: dict[str, OpCount] = {}

    def add(name, count, flops, weight=0, act=0, kv_read=0, kv_write=0, k_in=0):
        """One row per op name: layers that differ (windows, dense vs MoE) add into the same row."""
        if count <= 0:
            return
        group, mm = OPS[name]
        row = OpCount(name, group, count, count * flops, count * weight, count * act, count * kv_read,
                      count * kv_write, mm, k_in)
        if name in rows:
            o = rows[name]
            row = OpCount(name, group, o.count + row.count, o.flops + row.flops, o.weight_bytes + row.weight_bytes,
                          o.act_bytes + row.act_bytes, o.kv_read_bytes + row.kv_read_bytes,
                          o.kv_write_bytes + row.kv_write_bytes, mm, k_in if o.k_in == k_in else 0)
        rows[name] = row

    def linear(name, count, tokens, k, m, bias=False, weight_share=1.0):
        """tokens x k by k x m (+ a bias of m); weight_share < 1 when only part of the weights is read (MoE)."""
        weight = int(round((k * m + (m if bias else 0)) * wb * weight_share))
        add(name, count, 2 * tokens * k * m + (tokens * m if bias else 0), weight=weight, act=tokens * (k + m) * ab,
            k_in=k)

    norm_weight = model.norm_params(d)

    def norm(name, count):
        add(name, count, NORM_FLOPS_PER_ELEMENT * n * d, weight=norm_weight * wb, act=2 * n * d * ab)

    def attention_rows(layers, window):
        """Attention for `layers` layers that share one sliding window (None: full)."""
        # Keys each query sees, the distinct keys read, and (query, key) pairs per sequence and head.
        if w.kv_update == "static":
            keys_read = w.max_cache_len if window is None else min(window, w.max_cache_len)
            pairs = tq * keys_read                               # masked slots are still computed and read
        elif w.phase == "decode":
            keys_read = cached_tokens(model, past + 1, window)
            pairs = keys_read
        else:
            keys_read = cached_tokens(model, past + tq, window)
            if w.attention == "fused":
                pairs = causal_pairs(tq, window)                 # fused kernels skip the masked half
            else:
                pairs = tq * (past + tq)                         # eager computes the full square
        scores = B * h * pairs
        new_kv = 2 * n * kvd * kb                                # K and V of the new tokens
        if w.kv_update == "copy":                                # torch.cat: read old, write all
            old = 2 * B * cached_tokens(model, past, window) * kvd * kb
            add("kv_update", layers, 0, kv_read=old, kv_write=old + new_kv)
        else:
            add("kv_update", layers, 0, kv_write=new_kv)
        kv_bytes = 2 * B * keys_read * kvd * kb                  # K and V read by attention
        kv_act = 0
        if w.repeat_kv and model.num_key_value_heads < h:
            add("repeat_kv", layers, 0, kv_read=kv_bytes, act=2 * B * keys_read * qd * kb)
            kv_act, kv_bytes = 2 * B * keys_read * qd * kb, 0    # attention reads the copies
        q_o_bytes = 2 * n * qd * ab                              # Q read, O written
        if w.attention == "fused":
            add("attn_core", layers, 4 * scores * hd + SOFTMAX_FLOPS_PER_SCORE * scores,
                act=q_o_bytes + kv_act, kv_read=kv_bytes)
        else:
            add("attn_scores", layers, 2 * scores * hd, act=n * qd * ab + kv_act // 2 + scores * ab,
                kv_read=kv_bytes // 2)
            add("attn_softmax", layers, SOFTMAX_FLOPS_PER_SCORE * scores, act=2 * scores * ab)
            add("attn_values", layers, 2 * scores * hd, act=scores * ab + kv_act // 2 + n * qd * ab,
                kv_read=kv_bytes // 2)

    def gated_mlp(count, width):
        linear("gate_proj", count, n, d, width, model.mlp_bias)
        linear("up_proj", count, n, d, width, model.mlp_bias)
        add("act_mul", count, SILU_MUL_FLOPS_PER_ELEMENT * n * width, act=3 * n * width * ab)
        linear("down_proj", count, n, width, d, model.mlp_bias)

    def moe_rows(layers):
        """Router on every token; each token runs k experts; the weights read are those of the experts touched
        (expected under uniform routing, theory/moe.py), all E in the limit of many tokens."""
        E, k, fe = model.num_experts, model.experts_per_token, model.moe_intermediate_size
        share = expected_experts_touched(E, k, n)               # experts' weights read per layer, of E
        routed = n * k                                           # token-expert pairs
        linear("router", layers, n, d, E)
        for name, (kk, mm) in (("expert_gate_proj", (d, fe)), ("expert_up_proj", (d, fe)),
                               ("expert_down_proj", (fe, d))):
            add(name, layers, 2 * routed * kk * mm, weight=int(round(share * kk * mm * wb)),
                act=routed * (kk + mm) * ab, k_in=kk)
            if name == "expert_up_proj":
                add("expert_act_mul", layers, SILU_MUL_FLOPS_PER_ELEMENT * routed * fe, act=3 * routed * fe * ab)
        if model.shared_expert_intermediate_size:
            gated_mlp(layers, model.shared_expert_intermediate_size)
            linear("shared_expert_gate", layers, n, d, 1)

    add("embedding", 1, 0, weight=n * d * wb * (2 if model.learned_positions else 1), act=n * d * ab)
    norm("input_norm", L)
    linear("q_proj", L, n, d, qd, model.qkv_bias)
    linear("k_proj", L, n, d, kvd, model.qkv_bias)
    linear("v_proj", L, n, d, kvd, model.qkv_bias)
    if model.qk_norm:
        add("qk_norm", L, NORM_FLOPS_PER_ELEMENT * n * (qd + kvd), weight=2 * model.norm_params(hd) * wb,
            act=2 * n * (qd + kvd) * ab)
    if model.positions == "rotary":
        add("rotary", L, ROTARY_FLOPS_PER_ELEMENT * n * (qd + kvd), act=2 * n * (qd + kvd) * ab)
    for window, layers in sorted(Counter(model.windows()).items(), key=lambda x: (x[0] is not None, x[0] or 0)):
        attention_rows(layers, window)
    linear("o_proj", L, n, qd, d, model.o_bias)
    add("residual_add", 2 * L, ADD_FLOPS_PER_ELEMENT * n * d, act=3 * n * d * ab)
    norm("post_attention_norm", L * (model.norms_per_layer - 1))
    dense_layers = L - model.num_moe_layers
    if model.mlp == "gated":
        gated_mlp(dense_layers, f)
    else:
        linear("fc_in", dense_layers, n, d, f, model.mlp_bias)
        add("act", dense_layers, GELU_FLOPS_PER_ELEMENT * n * f, act=2 * n * f * ab)
        linear("fc_out", dense_layers, n, f, d, model.mlp_bias)
    if model.num_moe_layers:
        moe_rows(model.num_moe_layers)
    norm("final_norm", 1)
    if V:
        linear("lm_head", 1, B if w.logits == "last" else n, d, V, model.lm_head_bias)
    return list(rows.values())
