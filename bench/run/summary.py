"""What run.json records at the end of a run: the repeats of every finished point (their per-point records,
bench/store/repeats.py) and the profiler's inflation (profile.csv)."""
import json
import statistics
from pathlib import Path

from bench.store.files import read_csv
from bench.store.meta import update_meta
from bench.store.repeats import WALL_KEYS, repeat_record_path


def summarize(run_dir: Path, point_ids: list[str]) -> dict:
    """What run.json records about the repeats of every finished point."""
    walls = {k: 0.0 for k in WALL_KEYS}
    series, missed, interfered, taken = [], [], [], 0
    for pid in point_ids:
        path = repeat_record_path(run_dir, pid)
        if not path.exists():
            continue
        obj = json.loads(path.read_text())
        for k in WALL_KEYS:
            walls[k] += obj["wall_s"].get(k, 0.0)
        series += [{**c, "point_id": pid} for c in obj.get("canary", [])]
        taken += obj["repeats_taken"]
        if not obj["target_met"]:
            missed.append(pid)
        if obj["interference"]:
            interfered.append(pid)
    return {"wall_s": {k: round(v, 3) for k, v in walls.items()}, "repeats_taken": taken,
            "points_target_missed": missed, "points_interference": interfered, "canary_series": series}


def record_profile_overhead(run_dir: Path) -> None:
    """The profiler's inflation (profiled wall time / unprofiled median), summarised into run.json."""
    path = run_dir / "profile.csv"
    if not path.exists():
        return
    steps = {(r["point_id"], r["phase"], r["step"]): float(r["inflation"]) for r in read_csv(path)}
    values = sorted(steps.values())
    update_meta(run_dir, profile_inflation={
        "median": statistics.median(values), "min": values[0], "max": values[-1], "profiled_steps": len(values),
        "definition": "profiled step wall time / unprofiled median of the same step"})
