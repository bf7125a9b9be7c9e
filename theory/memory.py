"""Weight and KV-cache bytes, and what fits in a device's memory."""
from theory.dtypes import dtype_bytes
from theory.errors import TheoryError
from theory.hardware import HardwareSpec
from theory.model import ModelSpec


def weight_bytes(model: ModelSpec, dtype: str, tp: int = 1) -> int:
    """All parameters at dtype width, per device under tensor parallelism (norms replicated)."""
    counts = model.param_counts()
    sharded = counts["attention"] + counts["mlp"] + counts["embedding"] + counts["lm_head"]
    return (sharded // tp + counts["norms"]) * dtype_bytes(dtype)


def kv_bytes_per_token(model: ModelSpec, kv_dtype: str, tp: int = 1) -> int:
    """2 (K and V) · layers · kv_heads · head_dim · bytes (the arithmetic article, seed 002).
    Under TP the kv heads are split; a kv head cannot be split further, so it is replicated beyond."""
    kv_heads_per_device = max(1, model.num_key_value_heads // tp)
    return 2 * model.num_hidden_layers * kv_heads_per_device * model.head_dim * dtype_bytes(kv_dtype)


def kv_cache_tokens(model: ModelSpec, tokens: int, cache: str = "dynamic", max_cache_len: int | None = None) -> int:
    """Token slots a cache holds after `tokens` have passed: a sliding window caps a dynamic cache;
    a static cache always holds max_cache_len slots."""
    if cache == "static":
        if max_cache_len is None:
            raise TheoryError("a static cache needs max_cache_len")
        return max_cache_len
    return tokens if model.sliding_window is None else min(tokens, model.sliding_window)


def kv_cache_bytes(model: ModelSpec, batch: int, tokens: int, kv_dtype: str, cache: str = "dynamic",
                   max_cache_len: int | None = None, tp: int = 1) -> int:
    return batch * kv_cache_tokens(model, tokens, cache, max_cache_len) * kv_bytes_per_token(model, kv_dtype, tp)


def free_bytes_for_kv(model: ModelSpec, hw: HardwareSpec, dtype: str, reserve_fraction: float = 0.0, tp: int = 1) -> int:
    """Device capacity less a stated reserve (a fraction of capacity for activations, workspace and
    allocator slack) and the weights. Capacity is the datasheet's decimal figure, in bytes."""
    if not 0 <= reserve_fraction < 1:
        raise TheoryError(f"reserve fraction must be in [0, 1), got {reserve_fraction}")
    usable = int(hw.memory_capacity_bytes * (1 - reserve_fraction))
    return usable - weight_bytes(model, dtype, tp)


def max_batch_at_context(model: ModelSpec, hw: HardwareSpec, context_len: int, dtype: str, kv_dtype: str | None = None,
                         reserve_fraction: float = 0.0, tp: int = 1) -> int:
    """Largest batch whose caches of context_len tokens fit beside the weights (0: not even one)."""
    free = free_bytes_for_kv(model, hw, dtype, reserve_fraction, tp)
    per_seq = kv_cache_bytes(model, 1, context_len, kv_dtype or dtype, tp=tp)
    return max(0, free // per_seq) if per_seq else 0


def max_context_at_batch(model: ModelSpec, hw: HardwareSpec, batch: int, dtype: str, kv_dtype: str | None = None,
                         reserve_fraction: float = 0.0, tp: int = 1) -> int | None:
    """Largest context whose cache fits at this batch; None when a sliding window makes it unbounded."""
    free = free_bytes_for_kv(model, hw, dtype, reserve_fraction, tp)
    per_token = batch * kv_bytes_per_token(model, kv_dtype or dtype, tp)
    if free < 0:
        return 0
    tokens = free // per_token
    if model.sliding_window is not None and tokens >= model.sliding_window:
        return None
    return tokens
