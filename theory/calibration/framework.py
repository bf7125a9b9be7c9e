"""The framework's cost per pass (modules, cache object, masks, Python) as a function of what drives it.

Along the committed d=512 depth series (L = 1 → 16) the framework cost per op instance fell from 71 to 22 µs with a
fixed part of 0.2-1.1 ms per pass (issue 21): it is a fixed part per pass plus a part per op instance, not a
constant per instance. Per phase, the calibrated passes are grouped by depth (their op instances); each depth's
median cost is one point, and a least-squares line through them gives fixed_s + per_instance_s × instances
(both held at ≥ 0). That needs two depths or more. From one depth the cost per instance is all there is: it is
used as before, and `FrameworkEstimate.one_depth` says so (a pass of another depth is then `extrapolated`).

Decode's first step apart from the later ones: the framework cost of the first decode step after a prefill is about
twice a later step's (the committed default run of 2026-12-02, framework.csv, d=512 L=4: 0.68 ms at step 0, 0.46
by step 2, 0.32-0.35 from step 8 on; every point decays alike). A calibration holds each workload's first and
last decode step, so pooling them gave every step a cost between the two (leave-one-out at d=512 L=4: 0.64 ms
predicted against 0.33-0.46 ms measured). So a decode pass is fitted from the calibrated passes of its own kind
(`step_kind`: the first step, whose cache holds the prompt only, or a later one), and from all decode passes only
when the calibration has none of that kind.
"""
import statistics
from dataclasses import dataclass


@dataclass(frozen=True)
class FrameworkEstimate:
    time_s: float
    fixed_s: float | None           # None: one depth only, no fixed part known
    per_instance_s: float
    depths: int                     # distinct op-instance counts (depths) calibrated in this phase
    one_depth: bool
    inside: bool                    # the pass's instances within the calibrated ones
    held: str | None = None         # framework_fit's: "slope" or "fixed" held at 0, None when the line stood as fitted


def step_kind(phase: str, prompt_len: int | None, context_len: int | None) -> str:
    """prefill | decode-first (the cache holds the prompt only) | decode-later (unknown context: decode-later)."""
    if phase != "decode":
        return phase
    return "decode-first" if prompt_len is not None and context_len == prompt_len else "decode-later"


SIGNED = ("residual_s",)   # keys fitted by a plain least-squares line: a residual has either sign


def framework_fit(passes: list[dict], phase: str, kind: str | None = None, key: str = "framework_s"
                  ) -> tuple[list[tuple[int, float]], float | None, float, str | None]:
    """(points (instances, median of `key`), fixed_s or None, per_instance_s, held) over the phase's passes (of
    `kind`, step_kind's, when the calibration holds any such pass). key: framework_s (a cost: the line is held at
    ≥ 0 in slope and fixed part), or residual_s (the full-size calibration models' pass time beyond their kernels
    and framework, predict.py; signed, so its line is the plain least-squares one). held: "slope" when the
    deeper passes read less (the cost is then their mean, the same at every depth), "fixed" when the line's fixed
    part came out below 0 (a line through the origin instead), None otherwise."""
    mine = [p for p in passes if p["phase"] == phase and p.get(key) is not None]
    if kind is not None:
        same = [p for p in mine if step_kind(phase, p.get("prompt_len"), p.get("context_len")) == kind]
        mine = same or mine
    by: dict[int, list[float]] = {}
    for p in mine:
        by.setdefault(int(p["op_instances"]), []).append(p[key])
    pts = sorted((n, statistics.median(v)) for n, v in by.items())
    if not pts:
        raise ValueError(f"no calibrated {phase} pass with a {key}")
    if len(pts) == 1:
        return pts, None, pts[0][1] / pts[0][0], None
    xs, ys = [n for n, _ in pts], [f for _, f in pts]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    slope = sum((x - mx) * (y - my) for x, y in pts) / sum((x - mx) ** 2 for x in xs)
    if key in SIGNED:
        return pts, my - slope * mx, slope, None
    held = "slope" if slope < 0 else None
    slope = max(0.0, slope)
    fixed = my - slope * mx
    if fixed < 0:                    # a line through the origin then: the cost per instance that fits best
        fixed, held = 0.0, "fixed"
        slope = sum(x * y for x, y in pts) / sum(x * x for x in xs)
    return pts, fixed, slope, held


def framework_estimate(passes: list[dict], phase: str, instances: int, kind: str | None = None,
                       key: str = "framework_s") -> FrameworkEstimate:
    pts, fixed, per, held = framework_fit(passes, phase, kind, key)
    inside = pts[0][0] <= instances <= pts[-1][0]
    t = (fixed or 0.0) + per * instances
    return FrameworkEstimate(t, fixed, per, len(pts), fixed is None, inside, held)
