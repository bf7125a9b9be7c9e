"""Effects only when their interval excludes no effect (analysis/intervals.py)."""
import numpy as np
import pandas as pd

from analysis.intervals import excludes, ratio_interval, slope_interval


def samples_from(table: np.ndarray) -> pd.DataFrame:
    rows = [{"point_id": "p", "phase": "decode", "step": j, "repeat": r, "time_s": table[r, j], "disturbed": 0}
            for r in range(table.shape[0]) for j in range(table.shape[1])]
    return pd.DataFrame(rows)


def test_level_shift_within_trajectories_is_not_growth():
    rng = np.random.default_rng(1)
    steps = np.arange(64)
    # each repeat: flat, with the box shifting speed ±15% at a random step in a random direction
    table = np.array([1e-3 * (1 + rng.choice([-0.15, 0.15]) * (steps >= rng.integers(8, 56))) for _ in range(7)])
    est, lo, hi, n = slope_interval(samples_from(table), "p")
    assert n == 7 and lo <= 0 <= hi and not excludes((lo, hi), 0.0)


def test_real_growth_is_resolved():
    rng = np.random.default_rng(2)
    steps = np.arange(64)
    table = np.array([1e-3 + 2e-6 * steps + rng.normal(0, 2e-5, 64) for _ in range(7)])
    est, lo, hi, _ = slope_interval(samples_from(table), "p")
    assert excludes((lo, hi), 0.0) and lo <= 2e-6 <= hi


def test_ratio_interval_and_no_effect():
    iv = ratio_interval(1.00, 1.06, 0.98, 1.02)          # eager vs sdpa intervals overlapping: ratio spans 1
    assert iv[0] < 1 < iv[1] and not excludes(iv, 1.0)
    assert excludes(ratio_interval(1.30, 1.34, 0.98, 1.02), 1.0)
    assert ratio_interval(None, 1.0, 1.0, 1.0) is None
