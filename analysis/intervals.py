"""Effects judged by intervals: a decode step's growth with context, the slope of the per-step medians with a
bootstrap over whole repeats (the repeats are the independent samples; the steps of one trajectory share the
box's state, so resampling steps would understate the noise), and a ratio of two phases' times
from the rows' 95% intervals of the median. An effect is reported only when its interval excludes no effect."""
import numpy as np
import pandas as pd


BOOTSTRAP = 1000


def slope_interval(samples: pd.DataFrame | None, point_id: str) -> tuple[float, float, float, int] | None:
    """(slope of the per-step medians, 95% low, 95% high, repeats), s per context token; None where the samples
    cannot give one. The interval resamples whole repeats (seeded: a rerun gives the same bytes)."""
    if samples is None or samples.empty:
        return None
    s = samples[(samples["point_id"] == point_id) & (samples["phase"] == "decode") & (samples["repeat"] >= 0)]
    if "disturbed" in s.columns and (s["disturbed"].fillna(0) == 0).any():
        s = s[s["disturbed"].fillna(0) == 0]
    table = s.pivot_table(index="repeat", columns="step", values="time_s").dropna(axis=1).to_numpy()
    if table.shape[0] < 3 or table.shape[1] < 4:
        return None
    x = np.arange(table.shape[1], dtype=float)
    w = (x - x.mean()) / ((x - x.mean()) ** 2).sum()          # least-squares slope = w · y
    est = float(np.median(table, axis=0) @ w)
    idx = np.random.default_rng(0).integers(0, table.shape[0], (BOOTSTRAP, table.shape[0]))
    boots = np.median(table[idx], axis=1) @ w
    return est, float(np.quantile(boots, 0.025)), float(np.quantile(boots, 0.975)), table.shape[0]


def ratio_interval(num_low, num_high, den_low, den_high) -> tuple[float, float] | None:
    """Conservative interval of num/den from the two intervals (low/high over high/low)."""
    vals = [num_low, num_high, den_low, den_high]
    if any(v is None or (isinstance(v, float) and np.isnan(v)) for v in vals) or den_low <= 0 or den_high <= 0:
        return None
    return num_low / den_high, num_high / den_low


def excludes(interval, value: float) -> bool:
    return interval is not None and not (interval[0] <= value <= interval[1])
