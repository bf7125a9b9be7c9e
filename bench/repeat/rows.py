"""What the adaptive repeats add to each measurement row and to the point's record."""
import statistics

from bench.repeat.loop import LONG_TRAJECTORY_STEPS, tracked_rows
from bench.repeat.stats import median_ci

ROW_COLUMNS = ["time_ci_low_s", "time_ci_high_s", "time_ci_met", "repeats_disturbed", "interference", "canary_ratio"]


def interval_fields(measured, rule, base_s: float | None) -> list[dict]:
    """Per pass (prefill, decode steps): the 95% interval of the median over the trajectories used, and whether
    the stopping target was met for the row that stands for it (the mean decode step on long trajectories)."""
    used = measured.used
    log = measured.log
    n_pass = len(used[0].times_s)
    verdict = [median_ci(r).met(rule.target_rel) for r in tracked_rows(used)]
    long = n_pass - 1 > LONG_TRAJECTORY_STEPS
    readings = log.canary_readings if log is not None else []
    ratio = statistics.median(readings) / base_s if readings and base_s else None
    out = []
    for i in range(n_pass):
        ci = median_ci([t.times_s[i] for t in used])
        met = verdict[0 if i == 0 else 1] if long else verdict[i]
        out.append({"time_ci_low_s": ci.low_s, "time_ci_high_s": ci.high_s, "time_ci_met": int(met),
                    "repeats_disturbed": sum(log.disturbed) if log else 0,
                    "interference": int(log.interference) if log else 0, "canary_ratio": ratio})
    return out


def sample_marks(measured) -> list[int]:
    """1 for each repeat taken while the canary ran slow (kept in samples.csv, left out of the statistics)."""
    return [int(d) for d in measured.log.disturbed] if measured.log is not None else [0] * len(measured.repeats)
