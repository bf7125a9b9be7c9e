"""Is the per-box kernel cache still this box? Checked directly on the thing cached: a few sentinel kernels the run
needs, already in the cache, are timed again with the same microbenchmark, and the cache is reused only if each
new median is within TOLERANCE_REL of its cached one.

Why: a box can change speed for minutes at a time (a shared VM's neighbours, clocks); kernels cached while it was
2x slower would be composed and scored against a model measured now. Device name, torch version and threads (the
cache key) say nothing about that.
"""
from bench.kernels.microbench import STABLE_REL

# Each median is timed until its 95% interval's half-width is within STABLE_REL of it (microbench.py); two such
# medians of an unchanged box differ by at most the two half-widths added, 2·STABLE_REL = 10%. Beyond that the
# box (or the kernel) has changed.
TOLERANCE_REL = 2 * STABLE_REL
MAX_SENTINELS = 3
SENTINEL_MIN_S = 10e-6        # a sentinel long enough that the timer and one dispatch do not dominate it

# One sentinel per kind, so a change that hits compute, attention or memory traffic alone is seen.
KINDS = {"matmul": ("linear",), "attention": ("sdpa", "scores"),
         "elementwise": ("add", "silu_mul", "rmsnorm", "rotary", "cat", "index_copy", "softmax", "values",
                         "repeat_kv", "embedding")}
ELEMENTWISE_FIRST = ("add", "silu_mul", "rmsnorm")


def kind_of(impl: str) -> str | None:
    return next((kind for kind, impls in KINDS.items() if impl in impls), None)


def pick_sentinels(candidates: dict[str, tuple], cached: dict[str, dict]) -> list[str]:
    """kernel ids (of candidates: id -> (kernel, cache_state), all needed by the run and present in `cached`),
    one per kind: the quickest whose cached median is at least SENTINEL_MIN_S (cheap to time again, yet not
    dominated by the timer), else the longest; elementwise prefers the plain adds, act·mul and norms."""
    out = []
    for kind in KINDS:
        ids = [kid for kid, (k, _) in candidates.items() if kid in cached and kind_of(k.impl) == kind]
        if kind == "elementwise" and any(candidates[kid][0].impl in ELEMENTWISE_FIRST for kid in ids):
            ids = [kid for kid in ids if candidates[kid][0].impl in ELEMENTWISE_FIRST]
        if not ids:
            continue
        t = lambda kid: float(cached[kid]["median_s"])
        long_enough = [kid for kid in ids if t(kid) >= SENTINEL_MIN_S]
        out.append(min(long_enough, key=lambda kid: (t(kid), kid)) if long_enough else max(ids, key=lambda kid: (t(kid), kid)))
    return out[:MAX_SENTINELS]


def sentinel_record(kid: str, kernel, cached_row: dict, new_median_s: float) -> dict:
    cached_s = float(cached_row["median_s"])
    return {"kernel_id": kid, "impl": kernel.impl, "cached_median_s": cached_s, "new_median_s": new_median_s,
            "ratio": new_median_s / cached_s, "cached_utc": cached_row.get("measured_utc", "")}


def verdict(path: str, entries: int, sentinels: list[dict]) -> dict:
    """The check as the run records it (run.json `kernel_cache`, calibration `kernels.cache_check`)."""
    ok = all(abs(s["ratio"] - 1) <= TOLERANCE_REL for s in sentinels)
    return {"file": path, "cached_entries": entries, "tolerance_rel": TOLERANCE_REL, "sentinels": sentinels,
            "validated": ok, "action": "reused" if ok else
            "ignored: this run's kernels re-measured and the cache rewritten with them"}


def unchecked(path: str, entries: int) -> dict:
    return {"file": path, "cached_entries": entries, "tolerance_rel": TOLERANCE_REL, "sentinels": [],
            "validated": None, "action": "nothing cached to reuse" if entries == 0 else "none of the cached kernels needed so far"}


def check_text(check: dict) -> str:
    """One cell for kernels.csv's cache_check column."""
    if check["validated"] is None:
        return "" if check["cached_entries"] == 0 else "unchecked"
    ratios = " ".join(f"x{s['ratio']:.2f}" for s in check["sentinels"])
    word = "validated" if check["validated"] else "stale, re-measured"
    return f"{word}: sentinels new/cached {ratios} (tolerance ±{check['tolerance_rel']:.0%})"
