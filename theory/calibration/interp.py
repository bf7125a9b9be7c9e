"""Kernel times at shapes a calibration lacks: per op, from its calibrated instances, by the op's own work.

An op's work is what its kernel's time scales with: FLOPs for the matmuls and the attention core (theory's
is_matmul ops), bytes moved for everything else (norms, rotary, act·mul, adds, the cache update, the embedding
gather). Between the two nearest calibrated sizes the time is piecewise linear in log-log (a power law through
both points, so it is exact at them and monotone between); beyond the calibrated range it scales linearly with
the work at the nearest end's achieved rate (time/work), and says it extrapolated.

Which op instances a pass runs, and their work, come from theory's own op table for the pass as it runs
(`as_run_workload` of theory/asrun.py, the one place that maps bench's attention/cache choices to theory's
as-run terms).
"""
import math

from theory.asrun import as_run_workload  # noqa: F401  (callers import it from here too)
from theory.ops import OpCount

CALIBRATED, INTERPOLATED, EXTRAPOLATED = "calibrated", "interpolated", "extrapolated"
SAME_REL = 1e-9           # works closer than this are the same size


def op_work(row: OpCount) -> tuple[float, str]:
    """Work of one instance of the op, and its unit."""
    if row.is_matmul:
        return row.flops / row.count, "flops"
    return row.bytes / row.count, "bytes"


def _points(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Sorted by work; times at the same work averaged; non-positive work dropped (no rate to scale by)."""
    merged: list[list[float]] = []
    for w, t in sorted(p for p in points if p[0] > 0):
        if merged and abs(w - merged[-1][0]) <= SAME_REL * w:
            merged[-1][1].append(t)
        else:
            merged.append([w, [t]])
    return [(w, sum(ts) / len(ts)) for w, ts in merged]


def interpolate(points: list[tuple[float, float]], work: float) -> tuple[float, str]:
    """Kernel time at `work` from calibrated (work, time) points of the same op; and how it was obtained."""
    pts = _points(points)
    if not pts:
        raise ValueError("no calibrated instance with positive work")
    for w, t in pts:
        if abs(work - w) <= SAME_REL * w:
            return t, CALIBRATED
    lo, hi = pts[0], pts[-1]
    if work < lo[0]:
        return lo[1] * work / lo[0], EXTRAPOLATED      # the smallest's achieved rate
    if work > hi[0]:
        return hi[1] * work / hi[0], EXTRAPOLATED      # the largest's achieved rate
    for (w0, t0), (w1, t1) in zip(pts, pts[1:]):
        if w0 < work < w1:
            slope = math.log(t1 / t0) / math.log(w1 / w0)
            return t0 * (work / w0) ** slope, INTERPOLATED
    raise AssertionError("unreachable: work inside the calibrated range")
