"""Per-point repeat records (points/<id>.repeat.json): the canary's series, how the point's wall time split,
whether it met the target or met interference (their summary in run.json: bench/run/summary.py)."""
import json
from pathlib import Path

from bench.store.files import write_json
from bench.store.points import point_files

WALL_KEYS = ("build_s", "warmup_s", "repeats_s", "canary_s", "profile_s", "kernels_s")


def repeat_record_path(run_dir: Path, point_id: str) -> Path:
    return point_files(run_dir, point_id)[0].with_suffix(".repeat.json")


def write_point_meta(run_dir: Path, point_id: str, measured, walls: dict, canary=None) -> None:
    log = measured.log
    (run_dir / "points").mkdir(exist_ok=True)
    write_json(repeat_record_path(run_dir, point_id), {
        "point_id": point_id, "repeats_taken": len(log.repeats), "repeats_used": len(log.used),
        "disturbed": [int(d) for d in log.disturbed], "target_met": log.quiet_target_met,
        "interference": log.interference, "wall_s": walls, "canary": []})


def add_canary(run_dir: Path, point_id: str, series: list[dict]) -> None:
    path = repeat_record_path(run_dir, point_id)
    if path.exists():
        obj = json.loads(path.read_text())
        obj["canary"] = series
        write_json(path, obj)


def add_wall(run_dir: Path, point_id: str, key: str, seconds: float) -> None:
    """Time a point spent after its repeats were recorded (its kernels), added to its wall split."""
    path = repeat_record_path(run_dir, point_id)
    if path.exists():
        obj = json.loads(path.read_text())
        obj["wall_s"][key] = obj["wall_s"].get(key, 0.0) + seconds
        write_json(path, obj)
