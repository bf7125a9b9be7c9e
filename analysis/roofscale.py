"""The roofline in the point's own seconds: the run's ceilings are measured once at its start (and once again at
its end), while the box's speed moves between minutes (0.5-2x on a shared box). The paired kernels and the
measured passes are timed in the point's own minutes; the roofline is brought to them by the interference
canary (bench/timing/canary.py), read during every point and at the run's start, right after the ceilings.

What the canary can scale: its reading is one fixed small matmul plus one copy, summed, so it follows the box's
overall speed (the share of the core a neighbour leaves, its clock) and cannot tell compute from bandwidth. Every
ceiling (FLOP/s, DRAM and LLC bandwidth) is scaled by the same factor, which makes every op's roofline time, and
so the row's, that factor times the unscaled one (time = max(work / ceiling) per op, linear in one common scale).

  start: roofline(start ceilings) × reading at the point / reading at the start (`canary_ratio`, measured)
  end:   roofline(end ceilings)   × reading at the point / reading at the end of the run
The end reading is run.json `canary_end_s` where the run recorded one, else the median of the readings taken
during the run's last point (the last in the canary series: the sweep's last point). The roofline is the mean of
the two where both exist, and its interval spans them; a run without end ceilings has the start's alone (no
interval); a row without a canary reading keeps the unscaled roofline. `roofline_unscaled_s` keeps theory with
the start ceilings as measured.
"""
import statistics

import numpy as np
import pandas as pd

SCALE_LINE = ("roofline in the point's own seconds: the start and end ceilings scaled by the canary's reading at "
              "the point over its reading beside them (one factor for compute and bandwidth alike: the canary is a "
              "matmul plus a copy, so it follows the box's overall speed, not one ceiling apart from another)")


def canary_end_s(facts: dict) -> float | None:
    """The canary's reading at the end of the run: `canary_end_s`, else the median reading of the last point in
    the run's canary series (repeat_summary)."""
    if isinstance(facts.get("canary_end_s"), (int, float)):
        return float(facts["canary_end_s"])
    series = (facts.get("repeat_summary") or {}).get("canary_series") or []
    if not series:
        return None
    last = series[-1].get("point_id")
    xs = [float(c["time_s"]) for c in series if c.get("point_id") == last and c.get("time_s")]
    return statistics.median(xs) if xs else None


def factors(run, box, canary_ratio) -> tuple[float, float | None]:
    """(start factor, end factor or None) for one row: how much slower the box ran at the point than when each
    set of ceilings was measured."""
    facts = run.box(box) if hasattr(run, "box") else {}
    ratio = None if canary_ratio is None or pd.isna(canary_ratio) else float(canary_ratio)
    base, end = facts.get("canary_baseline_s"), canary_end_s(facts)
    if ratio is None or not ratio > 0:
        return 1.0, None
    return ratio, (ratio * base / end if base and end else None)


def scaled(start_s: float, end_s, f_start: float, f_end) -> tuple[float, float, float]:
    """(roofline, low, high) in the point's seconds from the start's and the end's unscaled rooflines."""
    a = start_s * f_start
    if end_s is None or pd.isna(end_s) or f_end is None:
        return a, a, a
    b = float(end_s) * f_end
    return (a + b) / 2, min(a, b), max(a, b)


def add_roofline(run, df: pd.DataFrame) -> pd.DataFrame:
    """roofline_s (the point's seconds) with roofline_low_s / roofline_high_s, and roofline_unscaled_s."""
    out = df.copy()
    end = out["predicted_time_s_ceilings_end"] if "predicted_time_s_ceilings_end" in out else [None] * len(out)
    ratio = out["canary_ratio"] if "canary_ratio" in out else [None] * len(out)
    boxes = out["box"] if "box" in out else [None] * len(out)
    memo, vals = {}, []
    start = pd.to_numeric(out["predicted_time_s_ceilings"], errors="coerce")   # a run without ceilings: NaN, not a crash
    for start_s, end_s, r, box in zip(start, end, ratio, boxes):
        key = (box if isinstance(box, str) else None, None if r is None or pd.isna(r) else float(r))
        if key not in memo:
            memo[key] = factors(run, *key)
        vals.append(scaled(float(start_s), end_s, *memo[key]))
    v = np.array(vals, dtype=float).reshape(-1, 3)
    out["roofline_unscaled_s"] = start.astype(float)
    out["roofline_s"], out["roofline_low_s"], out["roofline_high_s"] = v[:, 0], v[:, 1], v[:, 2]
    return out
