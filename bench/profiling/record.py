"""Where a point's profile lands in the run: its per-point profile.csv, with FLOPs counted beside each op (the
profiler's inflation is summarised into run.json by bench/run/summary.py)."""
from pathlib import Path

from bench.profiling.profile import PROFILE_COLUMNS, count_flops, profile_point
from bench.store.traces import trace_text
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


def traced_memory(run_dir: Path | None, point_id: str, model, device_kind: str, ids, p) -> list | None:
    """The allocation trace of one trajectory of its own, kept as points/<id>.alloc_trace.csv (assembled into the
    run's alloc_trace.csv); returns the CPU profiler's per-pass memory fields (None on CUDA)."""
    if device_kind == "cuda":
        from bench.profiling.cudatrace import cuda_memory_and_trace, has_memory_history
        if not has_memory_history():
            return None
        passes, trace = None, cuda_memory_and_trace(model, ids, p.generated, p.cache, p.max_cache_len, point_id)[1]
    else:
        from bench.profiling.cpumem import cpu_memory_and_trace
        passes, trace, _ = cpu_memory_and_trace(model, ids, p.generated, p.cache, p.max_cache_len, point_id)
    if run_dir is not None:
        (run_dir / "points").mkdir(exist_ok=True)
        atomic_write(point_files(run_dir, point_id)[0].with_suffix(".alloc_trace.csv"), trace_text(trace))
    return passes
