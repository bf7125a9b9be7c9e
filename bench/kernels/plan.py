"""Compose a trajectory (prefill + decode steps) from kernel times: rows of (phase, step, op, count, kernel).

Kernels whose shape moves with the context (the cache update, attention) are timed at the first and the last
decode step and interpolated linearly in context between them (torch.cat and attention are linear in keys);
everything else has one shape per phase. Instances per op come from theory's count_ops.
"""
from bench.kernels.cache import KernelCache
from bench.kernels.shapes import PassShape, pass_kernels
from theory.model import ModelSpec

COMPOSE_COLUMNS = ["point_id", "phase", "step", "context_len", "op", "count", "kernel_id", "kernel_s",
                   "kernel_ci_low_s", "kernel_ci_high_s", "interpolated"]


def passes(spec: ModelSpec, batch: int, prompt_len: int, generated: int, dtype: str, attention: str, cache: str,
           max_cache_len: int | None) -> list[PassShape]:
    common = dict(spec=spec, batch=batch, dtype=dtype, attention=attention, cache=cache, max_cache_len=max_cache_len)
    out = [PassShape(phase="prefill", query_len=prompt_len, past_len=0, **common)]
    out += [PassShape(phase="decode", query_len=1, past_len=prompt_len + s, **common) for s in range(generated - 1)]
    return out


def needed(shapes: list[PassShape], cache_state: str) -> list[tuple]:
    """(kernel, cache state) for every kernel a trajectory times: the prefill's, the first and last decode step's."""
    timed = shapes[:1] + ([shapes[1], shapes[-1]] if len(shapes) > 1 else [])
    return [(k, cache_state) for s in timed for _, _, k in pass_kernels(s)]


def _timed(cache: KernelCache, k, state: str) -> tuple[float, float, float, str]:
    r = cache.get(k, state)
    return float(r["median_s"]), float(r["ci_low_s"]), float(r["ci_high_s"]), r["kernel_id"]


def compose_rows(point_id: str, shapes: list[PassShape], cache: KernelCache, cache_state: str) -> list[dict]:
    rows = []
    prefill, decode = shapes[0], shapes[1:]
    cache.need(needed(shapes, cache_state))          # the kernel cache's sentinels are drawn from these
    for op, count, k in pass_kernels(prefill):
        med, lo, hi, kid = _timed(cache, k, cache_state)
        rows.append({"point_id": point_id, "phase": "prefill", "step": 0, "context_len": 0, "op": op, "count": count,
                     "kernel_id": kid, "kernel_s": med, "kernel_ci_low_s": lo, "kernel_ci_high_s": hi,
                     "interpolated": 0})
    if not decode:
        return rows
    first, last = pass_kernels(decode[0]), pass_kernels(decode[-1])
    c0, c1 = decode[0].past_len, decode[-1].past_len
    for (op, count, k0), (_, _, k1) in zip(first, last):
        a = _timed(cache, k0, cache_state)
        b = a if k1 == k0 else _timed(cache, k1, cache_state)
        for s, p in enumerate(decode):
            x = 0.0 if c1 == c0 else (p.past_len - c0) / (c1 - c0)
            vals = [a[i] + (b[i] - a[i]) * x for i in range(3)]
            kid = a[3] if x < 0.5 else b[3]
            rows.append({"point_id": point_id, "phase": "decode", "step": s, "context_len": p.past_len, "op": op,
                         "count": count, "kernel_id": kid, "kernel_s": vals[0], "kernel_ci_low_s": vals[1],
                         "kernel_ci_high_s": vals[2], "interpolated": int(k1 != k0 and 0 < x < 1)})
    return rows


def kernel_sums(rows: list[dict]) -> dict[tuple[str, int], float]:
    """Σ count × kernel_s per (phase, step)."""
    out: dict[tuple[str, int], float] = {}
    for r in rows:
        key = (r["phase"], r["step"])
        out[key] = out.get(key, 0.0) + r["count"] * r["kernel_s"]
    return out

