"""Weight and KV-cache bytes, and what fits in a device's memory."""
from theory.dtypes import dtype_bytes
from theory.errors import TheoryError
from theory.hardware import HardwareSpec
from theory.model import ModelSpec

CACHES = ("dynamic", "static")
# transformers' DynamicSlidingWindowLayer keeps the last window−1 tokens between passes (the next query makes
# the window); theory's ideal holds the window itself. `as_run=True` gives what the real cache holds.
AS_RUN_WINDOW_SLACK = 1


def replicated_kv_heads(model: ModelSpec, tp: int) -> int:
    """kv heads each device holds under TP: the heads are split, and a head cannot be split further, so with
    fewer kv heads than ranks each device holds (and reads) a replicated one (Megatron / vLLM do the same)."""
    return -(-model.num_key_value_heads // tp)


def weight_bytes(model: ModelSpec, dtype: str, tp: int = 1) -> int:
    """All parameters at dtype width, per device under tensor parallelism (norms replicated; k/v weights of
    replicated kv heads counted on every device that holds them)."""
    counts = model.param_counts()
    norms = counts.pop("norms")
    sharded = sum(counts.values())
    if tp > 1:
        L, d = model.num_hidden_layers, model.hidden_size
        kv_weight = L * 2 * d * model.kv_dim + (L * 2 * model.kv_dim if model.qkv_bias else 0)
        per_device_kv = kv_weight * replicated_kv_heads(model, tp) // model.num_key_value_heads
        return ((sharded - kv_weight) // tp + per_device_kv + norms) * dtype_bytes(dtype)
    return (sharded + norms) * dtype_bytes(dtype)


def streamed_bytes(model: ModelSpec, batch: int, tokens: int, dtype: str) -> int:
    """What one pass reads from memory: every weight but an untied embedding table (a pass gathers one row per token
    from it; a tied table is streamed by lm_head and counted once), plus the full KV cache at `tokens`. Between two
    uses of one weight a pass reads all of this, so it is also the reuse distance that decides whether the weights
    can stay cached from one pass to the next (bench/kernels/point.py cache_state, analysis/fit.py)."""
    gathered = 0 if model.tie_word_embeddings else model.param_counts()["embedding"] * dtype_bytes(dtype)
    return weight_bytes(model, dtype) - gathered + kv_cache_bytes(model, batch, tokens, dtype)


def kv_bytes_per_token(model: ModelSpec, kv_dtype: str, tp: int = 1) -> int:
    """2 (K and V) · layers · kv_heads · head_dim · bytes (the arithmetic article, seed 002), per device."""
    return 2 * model.num_hidden_layers * replicated_kv_heads(model, tp) * model.head_dim * dtype_bytes(kv_dtype)


def layer_tokens(window: int | None, tokens: int, cache: str = "dynamic", max_cache_len: int | None = None,
                 as_run: bool = False) -> int:
    """Token slots one layer's cache holds after `tokens` have passed."""
    if cache == "static":
        if max_cache_len is None:
            raise TheoryError("a static cache needs max_cache_len")
        return max_cache_len if window is None else min(window, max_cache_len)
    if cache != "dynamic":
        raise TheoryError(f"cache must be one of {', '.join(CACHES)}, got {cache!r}")
    if window is None:
        return tokens
    return min(tokens, window - AS_RUN_WINDOW_SLACK if as_run else window)


def kv_cache_tokens(model: ModelSpec, tokens: int, cache: str = "dynamic", max_cache_len: int | None = None,
                    as_run: bool = False) -> int:
    """Token slots summed over layers, divided by the layer count (exact when every layer is alike)."""
    total = sum(layer_tokens(w, tokens, cache, max_cache_len, as_run) for w in model.windows())
    return total // model.num_hidden_layers


def kv_cache_bytes(model: ModelSpec, batch: int, tokens: int, kv_dtype: str, cache: str = "dynamic",
                   max_cache_len: int | None = None, tp: int = 1, as_run: bool = False) -> int:
    per_layer_token = 2 * replicated_kv_heads(model, tp) * model.head_dim * dtype_bytes(kv_dtype)
    slots = sum(layer_tokens(w, tokens, cache, max_cache_len, as_run) for w in model.windows())
    return batch * slots * per_layer_token


def usable_bytes(hw: HardwareSpec, reserve_fraction: float = 0.0) -> int:
    if not 0 <= reserve_fraction < 1:
        raise TheoryError(f"reserve fraction must be in [0, 1), got {reserve_fraction}")
    return int(hw.usable_bytes * (1 - reserve_fraction))


def free_bytes_for_kv(model: ModelSpec, hw: HardwareSpec, dtype: str, reserve_fraction: float = 0.0, tp: int = 1) -> int:
    """Usable device memory (the driver's total where the preset states it) less a stated reserve (a fraction
    for activations, workspace and allocator slack) and the weights."""
    return usable_bytes(hw, reserve_fraction) - weight_bytes(model, dtype, tp)


def max_batch_at_context(model: ModelSpec, hw: HardwareSpec, context_len: int, dtype: str, kv_dtype: str | None = None,
                         reserve_fraction: float = 0.0, tp: int = 1) -> int:
    """Largest batch whose caches of context_len tokens fit beside the weights (0: not even one)."""
    free = free_bytes_for_kv(model, hw, dtype, reserve_fraction, tp)
    per_seq = kv_cache_bytes(model, 1, context_len, kv_dtype or dtype, tp=tp)
    return max(0, free // per_seq) if per_seq else 0


def max_context_at_batch(model: ModelSpec, hw: HardwareSpec, batch: int, dtype: str, kv_dtype: str | None = None,
                         reserve_fraction: float = 0.0, tp: int = 1) -> int | None:
    """Largest context whose cache fits at this batch; None when every layer has a sliding window and the
    windows fit (the cache stops growing)."""
    free = free_bytes_for_kv(model, hw, dtype, reserve_fraction, tp)
    if free < 0:
        return 0
    kv = lambda t: kv_cache_bytes(model, batch, t, kv_dtype or dtype, tp=tp)   # noqa: E731 (monotone in t)
    windows = model.windows()
    if all(w is not None for w in windows) and kv(max(windows)) <= free:
        return None
    lo, hi = 0, 1
    while kv(hi) <= free:
        lo, hi = hi, hi * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if kv(mid) <= free else (lo, mid)
    return lo


def feasibility(model: ModelSpec, hw: HardwareSpec, batch: int, tokens: int, dtype: str, kv_dtype: str | None = None,
                reserve_fraction: float = 0.0, tp: int = 1, cache: str = "dynamic",
                max_cache_len: int | None = None) -> tuple[bool, str]:
    """Whether weights and this batch's cache fit in usable memory, and if not, why (one line)."""
    usable = usable_bytes(hw, reserve_fraction)
    weights = weight_bytes(model, dtype, tp)
    gb = lambda n: f"{n / 1e9:.1f} GB"                                           # noqa: E731
    where = f"{hw.id} ({gb(usable)} usable per device" + (f", reserve {reserve_fraction:.0%}" if reserve_fraction else "") + ")"
    if weights > usable:
        return False, f"does not fit: the weights alone ({gb(weights)} per device) exceed {where}"
    kv = kv_cache_bytes(model, batch, tokens, kv_dtype or dtype, cache, max_cache_len, tp)
    if weights + kv > usable:
        return False, (f"does not fit: weights {gb(weights)} + KV cache {gb(kv)} at batch {batch} and {tokens} tokens"
                       f" exceed {where}")
    return True, ""
