"""One point in a child process (`python -m bench _point <run dir> <index>`), with a timeout from theory's
predicted work, on a chosen GPU (CUDA_VISIBLE_DEVICES). A child that dies leaves an `error` row with its last
line of stderr; one that overruns is killed and leaves a `timeout` row; either way the sweep goes on."""
import json
import os
import subprocess
import sys
from pathlib import Path

from bench.launch.budget import child_timeout_s
from bench.store.points import point_done, point_files, save_point
from bench.store.files import read_csv
from theory.hardware import hardware_from_json


def child_command(run_dir: Path, index: int) -> list[str]:
    return [sys.executable, "-m", "bench", "_point", str(run_dir), str(index)]


def child_env(gpu: str | None) -> dict:
    """The child sees only its GPU. `gpu` is an index among the GPUs this process sees, so map it through our
    own CUDA_VISIBLE_DEVICES when one is set."""
    env = dict(os.environ)
    if gpu is not None:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        env["CUDA_VISIBLE_DEVICES"] = visible.split(",")[int(gpu)] if visible else str(gpu)
    return env


def timeout_for(run_dir: Path, p, sweep, device_kind: str) -> float:
    meta = json.loads((run_dir / "run.json").read_text())
    dtype = p.resolved_dtype(device_kind)
    obj = meta.get("ceilings", {}).get(dtype)
    hw = hardware_from_json(obj, "run.json ceilings") if obj else None
    repeats, warmup_s = (sweep.repeats, sweep.warmup_s) if sweep is not None else (meta["repeats"], meta["warmup_s"])
    return child_timeout_s(p, repeats, warmup_s, hw, device_kind)


def run_child(run_dir: Path, index: int, p, pid: str, device, sweep=None, gpu: str | None = None,
              timeout_s: float | None = None) -> list[dict]:
    from bench.runner import base_row
    timeout_s = timeout_for(run_dir, p, sweep, device.kind) if timeout_s is None else timeout_s
    try:
        r = subprocess.run(child_command(run_dir, index), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           text=True, timeout=timeout_s, env=child_env(gpu))
        status, last = "error", None
    except subprocess.TimeoutExpired:                # subprocess.run has killed the child
        r, status = None, "timeout"
        last = (f"child process ran past its {timeout_s:.0f} s limit (theory's predicted work x10 + a 300 s "
                f"floor) and was killed")
    if point_done(run_dir, pid):
        return read_csv(point_files(run_dir, pid)[0])
    if r is not None:
        last = "child process failed: " + (r.stderr.strip().splitlines() or [f"exit status {r.returncode}"])[-1][:300]
    row = {**base_row(p, pid, device, p.resolved_dtype(device.kind)), "phase": "prefill", "step": 0,
           "context_len": 0, "status": status, "message": last}
    if gpu is not None:                              # from run.json: asking CUDA would make this process a context
        row["gpu_uuid"] = json.loads((run_dir / "run.json").read_text()).get("gpu_uuids", {}).get(gpu, "")
    save_point(run_dir, pid, [row], [])
    return [row]
