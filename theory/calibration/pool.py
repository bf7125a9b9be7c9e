"""Several calibrations of the same workloads, timed at different minutes, as one: each op's kernel time is the
median over them, and its interval spans theirs.

Why: this box changes speed by 0.5-2.7x between minutes (measured-facts.md), so one calibration carries the
speed of the seconds it was timed in. `python -m bench.kernels.versus --calibrate-from` times the calibration
before the model and again after each of its repeats (A B A B ... A); the pooled calibration is the box's speed
over the minutes that bracket the model, and how far the calibrations differ is how far the box moved. Pooling
only ever sees the calibration models' kernels: the target's own measurements are never in it.
"""
import statistics

from theory.errors import TheoryError

PASS_KEY = ("phase", "batch", "prompt_len", "context_len", "max_cache_len")


def _key(p: dict) -> tuple:
    return tuple(p.get(k) for k in PASS_KEY) + ((p.get("model") or {}).get("name"),)


def pool(cals: list[dict]) -> dict:
    """One calibration whose every op is the median over `cals` (the same passes and ops, in any order)."""
    if not cals:
        raise TheoryError("nothing to pool")
    first = cals[0]
    keys = [_key(p) for p in first["passes"]]
    by_cal = []
    for c in cals:
        passes = {_key(p): p for p in c["passes"]}
        if sorted(map(str, passes)) != sorted(map(str, keys)) or len(passes) != len(keys):
            raise TheoryError("calibrations to pool must hold the same passes (the same models and workloads)")
        by_cal.append(passes)
    out = []
    for p0, key in zip(first["passes"], keys):
        same = [b[key] for b in by_cal]
        if any(set(s["ops"]) != set(p0["ops"]) for s in same):
            raise TheoryError(f"calibrations to pool differ in the ops of their {p0['phase']} pass")
        ops = {}
        for op, o in p0["ops"].items():
            xs = [s["ops"][op] for s in same]
            ops[op] = {**o, "kernel_s": statistics.median(x["kernel_s"] for x in xs),
                       "ci_low_s": min(x["ci_low_s"] for x in xs), "ci_high_s": max(x["ci_high_s"] for x in xs)}
        out.append({**p0, "ops": ops, "framework_s": statistics.median(s["framework_s"] for s in same)})
    return {**first, "passes": out, "pooled_from": [c.get("utc_time") for c in cals],
            "wall_s": sum(c.get("wall_s") or 0 for c in cals)}
