"""KV caches as transformers builds them, and their exact tensor bytes.

HF quirk worth knowing: a sliding-window dynamic layer keeps window−1 tokens while get_seq_length() reports
all tokens seen, so bytes are read from the tensors, never derived from the reported length.
"""
CACHES = ("dynamic", "static")


def new_cache(model, cache: str, max_cache_len: int | None):
    from transformers import DynamicCache, StaticCache
    if cache == "dynamic":
        return DynamicCache(config=model.config)
    if cache == "static":
        return StaticCache(config=model.config, max_cache_len=max_cache_len)
    raise ValueError(f"cache must be one of {CACHES}, got {cache!r}")


def cache_tensor_bytes(cache) -> int:
    total = 0
    for layer in cache.layers:
        for t in (getattr(layer, "keys", None), getattr(layer, "values", None)):
            if t is not None:
                total += t.numel() * t.element_size()
    return total
