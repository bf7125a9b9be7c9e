"""KV-cache memory "as run on CUDA": what the caching allocator (theory/allocator.py) reserves for it, and capacity.

Two numbers, each said by name:
  ideal      the cache tensors' bytes (theory/memory.py: 2 · layers · kv_heads · head_dim · bytes per token).
  as run     the allocator's floor: the live cache tensors — every layer's K and V, plus for a dynamic cache the one
             new copy torch.cat makes while the old is alive — allocated in a fresh allocator (rounding to 512 B,
             2 MiB small segments, 20 MiB segments below 10 MiB, 2 MiB rounding above). It is what a pass needs once
             release_cached_blocks() has returned the cached segments, i.e. what decides an out-of-memory error.
             Without memory pressure a dynamic cache reserves more: the blocks of its older, smaller sizes stay
             cached and fragment the segments (`bench kvmem` replays a real pass's trace and shows that staircase).
Weights are counted ideal (their tensors' bytes) in the capacity figures; activations and workspaces are left to
the reserve fraction, as in theory/memory.py.
"""
from theory.allocator import AllocatorConfig, CachingAllocator, State, replay
from theory.dtypes import dtype_bytes
from theory.hardware import HardwareSpec
from theory.memory import free_bytes_for_kv, kv_cache_bytes, layer_tokens, replicated_kv_heads
from theory.model import ModelSpec


def cache_tensor_sizes(model: ModelSpec, batch: int, tokens: int, kv_dtype: str, cache: str = "dynamic",
                       max_cache_len: int | None = None, tp: int = 1) -> list[int]:
    """Bytes of each layer's K and V tensor (two per layer), as transformers' caches hold them after `tokens`."""
    per_token = batch * replicated_kv_heads(model, tp) * model.head_dim * dtype_bytes(kv_dtype)
    out = []
    for w in model.windows():
        n = layer_tokens(w, tokens, cache, max_cache_len, as_run=True)
        out += [per_token * n, per_token * n]
    return out


def live_sizes(model: ModelSpec, batch: int, tokens: int, kv_dtype: str, cache: str = "dynamic",
               max_cache_len: int | None = None, tp: int = 1) -> list[int]:
    """The tensors alive at the cache's peak: a dynamic cache's torch.cat holds the old and the new copy of one
    tensor at once (the largest layer's)."""
    sizes = cache_tensor_sizes(model, batch, tokens, kv_dtype, cache, max_cache_len, tp)
    return sizes + [max(sizes)] if cache == "dynamic" and sizes else sizes


def packed(sizes: list[int], cfg: AllocatorConfig = AllocatorConfig()) -> State:
    """Allocate `sizes` in order in a fresh allocator (no frees): its allocated and reserved bytes."""
    a = CachingAllocator(cfg)
    for s in sizes:
        if s > 0:
            a.malloc(s)
    return a.state()


def kv_reserved_as_run(model: ModelSpec, batch: int, tokens: int, kv_dtype: str, cache: str = "dynamic",
                       max_cache_len: int | None = None, tp: int = 1) -> int:
    return packed(live_sizes(model, batch, tokens, kv_dtype, cache, max_cache_len, tp)).reserved_bytes


def kv_as_run(model: ModelSpec, batch: int, tokens: int, kv_dtype: str, cache: str = "dynamic",
              max_cache_len: int | None = None, tp: int = 1) -> dict:
    """Ideal and as-run bytes for one request of `tokens` tokens at this batch (per device under TP)."""
    ideal = kv_cache_bytes(model, batch, tokens, kv_dtype, cache, max_cache_len, tp, as_run=True)
    st = packed(live_sizes(model, batch, tokens, kv_dtype, cache, max_cache_len, tp))
    tok = max(tokens, 1)
    return {"basis": "as run: the live K/V tensors" + (" plus torch.cat's one new copy" if cache == "dynamic" else "")
            + " packed by the CUDA caching allocator's rules (theory/allocator.py) into fresh segments",
            "cache": cache, "tokens": tokens, "batch": batch,
            "ideal_bytes": ideal, "ideal_bytes_per_token": ideal / tok,
            "allocated_bytes": st.allocated_bytes, "reserved_bytes": st.reserved_bytes,
            "reserved_bytes_per_token": st.reserved_bytes / tok,
            "reserved_bytes_per_sequence": st.reserved_bytes / batch,
            "reserved_over_ideal": st.reserved_bytes / ideal if ideal else None}


def _largest(fits, hi: int) -> int:
    """Largest n in [0, hi] with fits(n) (fits monotone, fits(0) true)."""
    lo = 0
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid - 1)
    return lo


def capacity_as_run(model: ModelSpec, hw: HardwareSpec, batch: int, context_len: int, dtype: str,
                    kv_dtype: str | None = None, reserve_fraction: float = 0.0, tp: int = 1,
                    cache: str = "dynamic", max_cache_len: int | None = None) -> dict:
    """Max batch at this context and max context at this batch, ideal and as run on CUDA (dynamic cache unless
    static is asked for; a static cache's slots are max_cache_len, or the context itself)."""
    kvd = kv_dtype or dtype
    free = free_bytes_for_kv(model, hw, dtype, reserve_fraction, tp)
    mcl = lambda t: (max_cache_len or t) if cache == "static" else None            # noqa: E731
    ideal = lambda b, t: kv_cache_bytes(model, b, t, kvd, cache, mcl(t), tp)       # noqa: E731
    as_run = lambda b, t: kv_reserved_as_run(model, b, t, kvd, cache, mcl(t), tp)  # noqa: E731
    out = {"basis": "ideal: cache tensor bytes; as_run_cuda: the caching allocator's floor (theory/kvrun.py); "
                    "weights ideal, reserve fraction held back", "cache": cache, "free_bytes_for_kv": free}
    if free <= 0:
        return {**out, "max_batch_at_context": {"ideal": 0, "as_run_cuda": 0},
                "max_context_at_batch": {"ideal": 0, "as_run_cuda": 0}}
    per_seq = ideal(1, context_len)
    b_ideal = free // per_seq if per_seq else 0
    b_run = _largest(lambda b: b == 0 or as_run(b, context_len) <= free, b_ideal)
    windows = model.windows()
    bounded = all(w is not None for w in windows) or cache == "static" and max_cache_len
    t_hi = 1
    while ideal(batch, t_hi) <= free and t_hi < (1 << 40):
        t_hi *= 2
    t_ideal = _largest(lambda t: t == 0 or ideal(batch, t) <= free, t_hi)
    t_run = _largest(lambda t: t == 0 or as_run(batch, t) <= free, t_ideal)
    unbounded = bounded and t_hi >= (1 << 40)
    return {**out, "max_batch_at_context": {"context_len": context_len, "ideal": b_ideal, "as_run_cuda": b_run},
            "max_context_at_batch": {"batch": batch, "ideal": None if unbounded else t_ideal,
                                     "as_run_cuda": None if unbounded else t_run}}


def step_states(rows, cfg: AllocatorConfig = AllocatorConfig()) -> list[dict]:
    """Replay a trace (rows in event order with phase, step, action, size_bytes, addr_id; theory.allocator.Event's
    fields) and return, per (phase, step) in order, the state after its last event and its peaks. A row with action
    `reserved` carries the allocator's measured reserved bytes at that point (CUDA traces) and is not replayed."""
    from theory.allocator import Event
    rows = list(rows)
    events = [r for r in rows if r["action"] != "reserved"]
    states = iter(replay([Event(r["action"], int(r["size_bytes"]), int(r["addr_id"])) for r in events], cfg))
    out, key = [], None
    for r in rows:
        k = (r["phase"], int(r["step"]))
        if k != key:
            out.append({"phase": k[0], "step": k[1], "peak_allocated_bytes": 0, "peak_reserved_bytes": 0,
                        "requested_bytes": 0, "allocated_bytes": 0, "reserved_bytes": 0, "segments": 0,
                        "largest_free_bytes": 0, **({k2: out[-1][k2] for k2 in STATE_KEYS} if out else {})})
            key = k
        cur = out[-1]
        if r["action"] == "reserved":
            cur["measured_reserved_bytes"] = int(r["size_bytes"])
            continue
        s = next(states)
        cur.update(requested_bytes=s.requested_bytes, allocated_bytes=s.allocated_bytes,
                   reserved_bytes=s.reserved_bytes, segments=s.segments, largest_free_bytes=s.largest_free_bytes)
        cur["peak_allocated_bytes"] = max(cur["peak_allocated_bytes"], s.allocated_bytes)
        cur["peak_reserved_bytes"] = max(cur["peak_reserved_bytes"], s.reserved_bytes)
    return out


STATE_KEYS = ("requested_bytes", "allocated_bytes", "reserved_bytes", "segments", "largest_free_bytes")


def staircase(tokens: list[int], reserved: list[int]) -> dict:
    """Jumps of a reserved-bytes series: how many, their median size, the median tokens between them, and the
    overall growth per token (last − first over the token span)."""
    jumps = [(t, r1 - r0) for t, r0, r1 in zip(tokens[1:], reserved, reserved[1:]) if r1 != r0]
    at = [t for t, _ in jumps]
    med = lambda xs: sorted(xs)[len(xs) // 2] if xs else None                      # noqa: E731
    span = tokens[-1] - tokens[0] if len(tokens) > 1 else 0
    return {"jumps": len(jumps), "median_jump_bytes": med([d for _, d in jumps]),
            "median_period_tokens": med([b - a for a, b in zip(at, at[1:])]),
            "growth_bytes_per_token": (reserved[-1] - reserved[0]) / span if span else None}


def cuda_json(model: ModelSpec, hw: HardwareSpec, out: dict, max_cache_len: int | None = None) -> dict:
    """theory's `--format json` keys for KV memory and capacity as run on CUDA, for both caches (a static cache
    holds max_cache_len slots, or the pass's tokens when none is given)."""
    tokens = out["prompt_len"] if out["phase"] == "prefill" else out["context_len"] + 1
    ctx = out["prompt_len"] if out["phase"] == "prefill" else out["context_len"]
    kvd, tp = out["kv_dtype"], out["tp"]
    caches = {"dynamic": None, "static": max_cache_len or tokens}
    return {"kv_as_run_cuda": {c: kv_as_run(model, out["batch"], tokens, kvd, c, m, tp) for c, m in caches.items()},
            "capacity_as_run_cuda": {c: capacity_as_run(model, hw, out["batch"], ctx, out["dtype"], kvd,
                                                        out["reserve_fraction"], tp, c, max_cache_len)
                                     for c in caches}}
