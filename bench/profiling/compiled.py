"""Profile a compiled point's steps after its timed trajectories, as eager points are profiled.

Decode steps (and a compiled prefill) are profiled on a trajectory of their own with record_shapes (the extern
matmuls are named by shape) and no module hooks or patched functions: a hook or a replaced global would be a
guard failure, i.e. a recompilation. A prefill that runs eager (compile-static, cudagraphs) is not profiled
here: it is the eager twin's prefill, and profiling it the eager way (module hooks, a wrapped cache.update)
recompiles the decode step afterwards (seen on torch 2.13). A trajectory that compiled anything while profiled
yields no compiled rows (that would profile a compilation); dynamo's counters tell.
"""
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from bench.profiling.compiled_attribute import attribute_compiled, row_group
from bench.model import Passes, new_cache
from bench.modes import graphs_compiled, mode
from bench.profiling.profile import MAX_TRACE_BYTES


def profile_compiled_point(model, device, point_id: str, input_ids, generated: int, cache: str, max_cache_len,
                           execution: str, spec, step_medians: list[float], trace_dir: Path | None) -> list[dict]:
    first = 0 if mode(execution).compiled_pass("prefill") else 1      # trajectory index 0 is the prefill
    chosen = {i for i in {0, 1, generated - 1} if first <= i < generated}
    return _compiled_steps(model, device, point_id, input_ids, generated, cache, max_cache_len, spec, step_medians,
                            trace_dir, chosen)


def _compiled_steps(model, device, point_id, input_ids, generated, cache, max_cache_len, spec, step_medians,
                    trace_dir, chosen) -> list[dict]:
    cuda = device.kind == "cuda"
    activities = [a for a in [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
                  if a in torch.profiler.supported_activities()]
    run = Passes(model, new_cache(model, cache, max_cache_len))
    prompt_len = input_ids.shape[1]
    rows, tokens, graphs = [], input_ids, graphs_compiled()
    with torch.inference_mode():
        for i in range(generated):
            if i not in chosen:
                out = run(tokens)
                tokens = out.logits[:, -1].argmax(-1, keepdim=True)
                continue
            phase, step = ("prefill", 0) if i == 0 else ("decode", i - 1)
            with profile(activities=activities, record_shapes=True) as prof:
                device.sync()
                t0 = time.perf_counter()
                out = run(tokens)
                device.sync()
                wall = time.perf_counter() - t0
            per_op, total = attribute_compiled(prof.events(), spec, cuda)
            trace = _trace(prof, trace_dir, f"{point_id}-{phase}-{step}.json")
            for op, rec in sorted(per_op.items(), key=lambda kv: (-kv[1]["time_s"], kv[0])):
                rows.append({"point_id": point_id, "phase": phase, "step": step,
                             "context_len": 0 if i == 0 else prompt_len + i - 1, "op": op, "group": row_group(op),
                             "time_s": rec["time_s"], "calls": rec["calls"], "input_shapes": rec["input_shapes"],
                             "share": rec["time_s"] / total if total else 0.0, "step_profiled_s": total,
                             "step_wall_profiled_s": wall, "step_median_s": step_medians[i],
                             "inflation": wall / step_medians[i], "flops_counted": None, "cpu_bytes_allocated": None,
                             "gpu_idle_fraction": None, "kernel": rec["kernel"], "trace": trace})
            tokens = out.logits[:, -1].argmax(-1, keepdim=True)
    run.check()
    return rows if graphs_compiled() == graphs else []


def _trace(prof, trace_dir: Path | None, name: str) -> str:
    if trace_dir is None:
        return ""
    trace_dir.mkdir(parents=True, exist_ok=True)
    path = trace_dir / name
    prof.export_chrome_trace(str(path))
    if path.stat().st_size > MAX_TRACE_BYTES:
        path.unlink()
        return ""
    return f"traces/{path.name}"


def save_compiled_profile(run_dir: Path, point_id: str, model, device, ids, p, spec, medians: list[float]) -> None:
    """points/<id>.profile.csv for a compiled point, in profile.csv's columns (no FLOP count: FlopCounterMode is
    a dispatch mode, which would run the step outside its compiled graph)."""
    from bench.profiling.profile import PROFILE_COLUMNS
    from bench.store.files import atomic_write, csv_text
    from bench.store.points import point_files
    rows = profile_compiled_point(model, device, point_id, ids, p.generated, p.cache, p.max_cache_len, p.execution,
                                  spec, medians, run_dir / "traces")
    (run_dir / "points").mkdir(exist_ok=True)
    atomic_write(point_files(run_dir, point_id)[0].with_suffix(".profile.csv"), csv_text(rows, PROFILE_COLUMNS))
