"""A new run directory, with sweep.json and run.json written before anything is measured, so an interruption at
any moment leaves a directory `resume` can finish."""
import re
import sys
import time
from pathlib import Path

from bench.env import run_metadata
from bench.kernels import kernel_cache_dir
from bench.run.ceilings import ensure_ceilings
from bench.store.files import atomic_write
from bench.store.meta import create_meta
from bench.sweep import Sweep
from theory.errors import TheoryError


def new_run_dir(out_root: Path, device_kind: str, sweep_name: str) -> Path:
    """A fresh directory directly under out_root, created atomically (mkdir either makes it or fails)."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", sweep_name).strip(".-") or "sweep"    # never a path
    out_root.mkdir(parents=True, exist_ok=True)
    for n in range(1, 10_000):
        run_dir = out_root / (f"{stamp}-{device_kind}-{safe}" + (f"-{n}" if n > 1 else ""))
        try:
            run_dir.mkdir()
            return run_dir
        except FileExistsError:
            continue
    raise TheoryError(f"cannot create a new run directory under {out_root}")


def create_run(sweep: Sweep, sweep_path: Path, device, out_root: Path, log=sys.stderr, profile: bool = True,
               isolate: bool | None = None, gpus: list[int] | None = None, kernels: bool = True,
               kernel_timing: str = "paired", kernel_cache: Path | None = None, shard: dict | None = None,
               executor: dict | None = None) -> Path:
    """The run directory with sweep.json and run.json (no ceilings yet), printed before anything is measured.
    isolate: one child process per point (default on CUDA, where errors poison a process; off on CPU).
    gpus: CUDA only, several GPUs measuring isolated points in parallel (bench/launch/parallel.py).
    kernel_timing: "paired" (an eager point's kernels in rounds between its repeats, bench/kernels/paired.py) or
    "cached" (after the point, from the per-box kernel cache).
    kernel_cache: the per-box kernel cache folder (default: beside the runs, bench.kernels.kernel_cache_dir);
    run.json records it (absolute), so a resume or a point's child uses the same one.
    shard: bench/run/shard.py shard_record (the sweep is already restricted to it). executor: where the points run
    when not on this box ({"name": "ray", ...}, bench/launch/ray.py)."""
    name = sweep.name if shard is None else f"{sweep.name}-shard{shard['index']}of{shard['count']}"
    run_dir = new_run_dir(out_root, device.kind, name)
    print(f"run directory: {run_dir}", file=log, flush=True)
    atomic_write(run_dir / "sweep.json", sweep.source_text)
    # The parent of an isolated CUDA run learns its device's facts from the ceilings child (ensure_ceilings).
    facts = {} if device.isolated else run_metadata(device)
    create_meta(run_dir, {
        "run_id": run_dir.name, **facts, "device": device.kind, "threads": device.threads,
        "sweep_name": sweep.name, "sweep_path": str(sweep_path),
        "sweep_sha1": sweep.sha1, "repeats": sweep.repeats, "warmup_s": sweep.warmup_s,
        "min_repeats": sweep.min_repeats, "max_repeats": sweep.max_repeats, "max_point_s": sweep.max_point_s,
        "points": len(sweep.points), "profile": profile, "kernels": kernels,
        "kernel_timing": kernel_timing if kernels else None,
        "kernel_cache_dir": str(Path(kernel_cache or kernel_cache_dir(out_root)).resolve()),
        "isolate": device.kind == "cuda" if isolate is None else isolate, **({"gpus": gpus} if gpus else {}),
        **({"shard": shard} if shard else {}), **({"executor": executor} if executor else {}),
        "ceilings": {}, "ceilings_detail": {},
    })
    return run_dir


def start_run(sweep: Sweep, sweep_path: Path, device, out_root: Path, log=sys.stderr, profile: bool = True,
              isolate: bool | None = None, gpus: list[int] | None = None, kernels: bool = True,
              kernel_timing: str = "paired") -> Path:
    """create_run, then the ceilings (what tests and the repeatability benchmark start from)."""
    run_dir = create_run(sweep, sweep_path, device, out_root, log, profile, isolate, gpus, kernels, kernel_timing)
    ensure_ceilings(run_dir, sweep, device, log)
    return run_dir
