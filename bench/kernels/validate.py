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
# A sentinel must be long enough to time again to ±TOLERANCE_REL. On this CPU an empty op costs ~1 µs and a
# residual add 3 µs (measured-facts.md): at 3–15 µs (framework-sized shapes) the call's own dispatch, and whether
# the operands are still in L1/L2, move the time by tens of percent between processes (issue 26: ratios 0.64–1.64
# over five back-to-back runs of an idle box). At 50 µs that ~1–2 µs is 2–4%, inside the tolerance. 50 µs is a
# choice with that margin, not a fit.
SENTINEL_MIN_S = 50e-6

# One sentinel per kind, so a change that hits compute, attention or memory traffic alone is seen.
KINDS = {"matmul": ("linear",), "attention": ("sdpa", "scores"),
         "elementwise": ("add", "silu_mul", "rmsnorm", "rotary", "cat", "index_copy", "softmax", "values",
                         "repeat_kv", "embedding")}


def kind_of(impl: str) -> str | None:
    return next((kind for kind, impls in KINDS.items() if impl in impls), None)


def pick_sentinels(candidates: dict[str, tuple], cached: dict[str, dict]) -> list[str]:
    """kernel ids (of candidates: id -> (kernel, cache_state), all needed by the run and present in `cached`),
    one per kind: the longest by its cached median (the largest work: the least dispatch in it, and the kernels
    that weigh most in a composed prediction), if that is at least SENTINEL_MIN_S. A kind with no kernel that long
    has no sentinel; a cache with none at all cannot be checked and is not reused (verdict)."""
    out = []
    for kind in KINDS:
        ids = [kid for kid, (k, _) in candidates.items() if kid in cached and kind_of(k.impl) == kind]
        longest = max(ids, key=lambda kid: (float(cached[kid]["median_s"]), kid), default=None)
        if longest is not None and float(cached[longest]["median_s"]) >= SENTINEL_MIN_S:
            out.append(longest)
    return out[:MAX_SENTINELS]


def sentinel_record(kid: str, kernel, cached_row: dict, new_median_s: float) -> dict:
    cached_s = float(cached_row["median_s"])
    return {"kernel_id": kid, "impl": kernel.impl, "cached_median_s": cached_s, "new_median_s": new_median_s,
            "ratio": new_median_s / cached_s, "cached_utc": cached_row.get("measured_utc", "")}


def verdict(path: str, entries: int, sentinels: list[dict], needed: int = 0) -> dict:
    """The check as the run records it (run.json `kernel_cache`, calibration `kernels.cache_check`). No sentinel
    (none of the `needed` cached kernels runs SENTINEL_MIN_S): not checkable, so not reused; those kernels are
    short, so timing them again costs little."""
    ok = bool(sentinels) and all(abs(s["ratio"] - 1) <= TOLERANCE_REL for s in sentinels)
    action = "reused" if ok else (
        "ignored: this run's kernels re-measured and the cache rewritten with them" if sentinels else
        f"ignored: none of the {needed} cached kernels this run needs takes {SENTINEL_MIN_S * 1e6:.0f} µs, too short "
        f"to time again to ±{TOLERANCE_REL:.0%}; re-measured and the cache rewritten with them")
    return {"file": path, "cached_entries": entries, "tolerance_rel": TOLERANCE_REL, "sentinels": sentinels,
            "validated": ok, "action": action}


def damaged(path: str, why: str) -> dict:
    """A cache file that cannot be read as one: ignored and rewritten from this run's kernels."""
    return {**unchecked(path, 0), "damaged": why,
            "action": f"damaged ({why}): ignored, and rewritten with this run's kernels"}


def unchecked(path: str, entries: int) -> dict:
    return {"file": path, "cached_entries": entries, "tolerance_rel": TOLERANCE_REL, "sentinels": [],
            "validated": None, "action": "nothing cached to reuse" if entries == 0 else "none of the cached kernels needed so far"}


def check_text(check: dict) -> str:
    """One cell for kernels.csv's cache_check column."""
    if check["validated"] is None:
        return "" if check["cached_entries"] == 0 else "unchecked"
    if not check["sentinels"]:
        return f"too short to check (no kernel of {SENTINEL_MIN_S * 1e6:.0f} µs), re-measured"
    ratios = " ".join(f"x{s['ratio']:.2f}" for s in check["sentinels"])
    word = "validated" if check["validated"] else "stale, re-measured"
    return f"{word}: sentinels new/cached {ratios} (tolerance ±{check['tolerance_rel']:.0%})"


def check_line(check: dict) -> str:
    """The verdict in one line for stderr: which file, what was decided, and the sentinels' ratios."""
    ratios = ", ".join(f"{s['impl']} x{s['ratio']:.2f}" for s in check["sentinels"])
    why = f" (sentinels new/cached: {ratios}; tolerance ±{check['tolerance_rel']:.0%})" if ratios else ""
    return f"kernel cache {check['file']}: {check['action']}{why}"
