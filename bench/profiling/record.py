"""Where a point's profile lands in the run: its per-point profile.csv, with FLOPs counted beside each op (the
profiler's inflation is summarised into run.json by bench/run/summary.py)."""
from pathlib import Path

from bench.profiling.profile import PROFILE_COLUMNS, count_flops, profile_point
from bench.store.files import atomic_write, csv_text
from bench.store.points import point_files


def save_profile(run_dir: Path, point_id: str, model, device, ids, p, medians: list[float]) -> None:
    """Profiled trajectories of their own, after the timed ones; FLOPs counted on prefill and decode step 0."""
    rows = profile_point(model, device, point_id, ids, p.generated, p.cache, p.max_cache_len, medians,
                         run_dir / "traces")
    flops = count_flops(model, ids, p.cache, p.max_cache_len)
    for r in rows:
        counted = flops.get((r["phase"], r["step"]), {})
        key = "attention_core" if r["op"] in ("attn_core", "attn_scores", "attn_values") else r["op"]
        r["flops_counted"] = counted.get(key)
    (run_dir / "points").mkdir(exist_ok=True)
    atomic_write(point_files(run_dir, point_id)[0].with_suffix(".profile.csv"), csv_text(rows, PROFILE_COLUMNS))
