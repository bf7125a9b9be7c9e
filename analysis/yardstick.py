"""How fast the box ran during each point, read from the yardsticks sampled in its paired rounds
(bench/kernels/yardstick.py; kernel_rounds.csv, kind `yardstick`): the same kernels and dispatch probe at every
point, so their medians over a point's used rounds differ between points only by the box.

Per yardstick, a point's reading is its median over the point's used rounds, and its ratio is that reading over
the median of every point's reading of the same yardstick in the run. A point's `kernels` speed is the geometric
mean of its kernel yardsticks' ratios; its `dispatch` speed is the dispatch probe's ratio. Above 1: slower than
the run's typical point. Runs from before the yardsticks have none (None), and callers fall back to the canary.
"""
import math
import statistics
from pathlib import Path

import pandas as pd

ROUNDS_FILE, DISPATCH = "kernel_rounds.csv", "dispatch"      # as bench/kernels/rounds.py writes them


def point_speeds(run_dir: Path) -> dict[str, dict[str, float]] | None:
    """point_id → {"kernels": ratio, "dispatch": ratio} (module docstring); None without yardstick rounds."""
    path = Path(run_dir) / ROUNDS_FILE
    if not path.exists():
        return None
    rounds = pd.read_csv(path, dtype={"point_id": str})
    return speeds_of(rounds)


def speeds_of(rounds: pd.DataFrame) -> dict[str, dict[str, float]] | None:
    y = rounds[(rounds["kind"] == "yardstick") & (rounds["used"] == 1)]
    if y.empty:
        return None
    med = y.groupby(["name", "point_id"])["sample_s"].median().unstack("name")
    ratio = med / med.median(axis=0)
    kernels = [c for c in ratio.columns if c != DISPATCH]
    out = {}
    for pid, r in ratio.iterrows():
        ks = [float(r[c]) for c in kernels if not pd.isna(r[c]) and r[c] > 0]
        d = r.get(DISPATCH)
        out[str(pid)] = {"kernels": math.exp(statistics.fmean(math.log(x) for x in ks)) if ks else None,
                         "dispatch": None if d is None or pd.isna(d) else float(d)}
    return out
