"""Per-point repeat records (points/<id>.repeat.json) and their summary in run.json: the canary's series, how
the run's wall time split, and which points missed the target or met interference."""
import json
from pathlib import Path

from bench.records import point_files, write_json

WALL_KEYS = ("build_s", "warmup_s", "repeats_s", "canary_s", "profile_s", "kernels_s")


def meta_path(run_dir: Path, point_id: str) -> Path:
    return point_files(run_dir, point_id)[0].with_suffix(".repeat.json")


def write_point_meta(run_dir: Path, point_id: str, measured, walls: dict, canary=None) -> None:
    log = measured.log
    (run_dir / "points").mkdir(exist_ok=True)
    write_json(meta_path(run_dir, point_id), {
        "point_id": point_id, "repeats_taken": len(log.repeats), "repeats_used": len(log.used),
        "disturbed": [int(d) for d in log.disturbed], "target_met": log.quiet_target_met,
        "interference": log.interference, "wall_s": walls, "canary": []})


def add_canary(run_dir: Path, point_id: str, series: list[dict]) -> None:
    path = meta_path(run_dir, point_id)
    if path.exists():
        obj = json.loads(path.read_text())
        obj["canary"] = series
        write_json(path, obj)


def add_wall(run_dir: Path, point_id: str, key: str, seconds: float) -> None:
    """Time a point spent after its repeats were recorded (its kernels), added to its wall split."""
    path = meta_path(run_dir, point_id)
    if path.exists():
        obj = json.loads(path.read_text())
        obj["wall_s"][key] = obj["wall_s"].get(key, 0.0) + seconds
        write_json(path, obj)


def summarize(run_dir: Path, point_ids: list[str]) -> dict:
    """What run.json records about the repeats of every finished point."""
    walls = {k: 0.0 for k in WALL_KEYS}
    series, missed, interfered, taken = [], [], [], 0
    for pid in point_ids:
        path = meta_path(run_dir, pid)
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
