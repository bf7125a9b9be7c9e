"""Effects judged by intervals: a decode step's growth with context from one slope per repeat (the repeats are
the independent samples; the steps of one trajectory share the box's state), and a ratio of two phases' times
from the rows' 95% intervals of the median. An effect is reported only when its interval excludes no effect."""
import numpy as np
import pandas as pd

from analysis.kvmem import slope
from bench.repeat.stats import median_ci


def repeat_slopes(samples: pd.DataFrame, point_id: str) -> list[float]:
    """One least-squares slope (s per context token) per timed repeat of the point's decode steps."""
    s = samples[(samples["point_id"] == point_id) & (samples["phase"] == "decode") & (samples["repeat"] >= 0)]
    if "disturbed" in s.columns and (s["disturbed"].fillna(0) == 0).any():
        s = s[s["disturbed"].fillna(0) == 0]
    out = []
    for _, g in s.groupby("repeat"):
        b = slope(g["step"], g["time_s"])                   # step and context differ by a constant per point
        if b is not None:
            out.append(b)
    return out


def slope_interval(samples: pd.DataFrame | None, point_id: str) -> tuple[float, float, float, int] | None:
    """(median slope, 95% low, 95% high, repeats) or None where the samples cannot give one."""
    if samples is None or samples.empty:
        return None
    b = repeat_slopes(samples, point_id)
    if len(b) < 2:
        return None
    ci = median_ci(b)
    return ci.median_s, ci.low_s, ci.high_s, ci.n


def ratio_interval(num_low, num_high, den_low, den_high) -> tuple[float, float] | None:
    """Conservative interval of num/den from the two intervals (low/high over high/low)."""
    vals = [num_low, num_high, den_low, den_high]
    if any(v is None or (isinstance(v, float) and np.isnan(v)) for v in vals) or den_low <= 0 or den_high <= 0:
        return None
    return num_low / den_high, num_high / den_low


def excludes(interval, value: float) -> bool:
    return interval is not None and not (interval[0] <= value <= interval[1])
