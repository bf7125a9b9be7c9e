"""Child processes, both sides of the protocol. A CUDA error other than OOM poisons the process that met it, and
the parent of an isolated CUDA run never creates a CUDA context (bench/devices/parent.py), so on CUDA:

- one point in a child (`python -m bench _point <run dir> <index>`), with a timeout from theory's predicted work
  (bench/launch/budget.py), on a chosen GPU (CUDA_VISIBLE_DEVICES). A child that dies leaves an `error` row with
  its last line of stderr; one that overruns is killed and leaves a `timeout` row; either way the sweep goes on.
- the ceilings and the device's facts in a child (`python -m bench _ceilings <hand-over json> <threads>
  <dtype,...>`), pinned to its GPU likewise; it writes its results to the hand-over file, which the parent reads
  and removes, and hands to its ParentCuda.
"""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from bench.launch.budget import TIMEOUT_FLOOR_S, child_timeout_s
from bench.point.rows import base_row, failure_row
from bench.store.files import read_csv, write_json
from bench.store.meta import read_meta
from bench.store.points import point_done, point_files, save_point
from theory.hardware import hardware_from_json

CEILINGS_TIMEOUT_S = 4 * TIMEOUT_FLOOR_S         # GiB-sized buffers and a warm-up by time, on a cold GPU


def child_command(run_dir: Path, index: int, gpu: str | None = None, again: Path | None = None) -> list[str]:
    """`python -m bench _point <run dir> <index> [<gpu>|- [<hand-over json>]]`: gpu, the run's GPU index (whose
    canary baseline the child compares against); a hand-over file: the end-of-run re-measure (nothing recorded)."""
    extra = [gpu if gpu is not None else "-"] + ([str(again)] if again is not None else [])
    return [sys.executable, "-m", "bench", "_point", str(run_dir), str(index), *extra]


def child_env(gpu: str | None) -> dict:
    """The child sees only its GPU. `gpu` is an index among the GPUs this process sees, so map it through our
    own CUDA_VISIBLE_DEVICES when one is set."""
    env = dict(os.environ)
    if gpu is not None:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        env["CUDA_VISIBLE_DEVICES"] = visible.split(",")[int(gpu)] if visible else str(gpu)
    return env


def timeout_for(run_dir: Path, p, sweep, device_kind: str) -> float:
    meta = read_meta(run_dir)
    dtype = p.resolved_dtype(device_kind)
    obj = meta.get("ceilings", {}).get(dtype)
    hw = hardware_from_json(obj, "run.json ceilings") if obj else None
    repeats, warmup_s = (sweep.repeats, sweep.warmup_s) if sweep is not None else (meta["repeats"], meta["warmup_s"])
    return child_timeout_s(p, repeats, warmup_s, hw, device_kind)


def run_child(run_dir: Path, index: int, p, pid: str, device, sweep=None, gpu: str | None = None,
              timeout_s: float | None = None) -> list[dict]:
    """Parent side: the point measured by a child; its rows, or the failure row the parent writes for it."""
    timeout_s = timeout_for(run_dir, p, sweep, device.kind) if timeout_s is None else timeout_s
    try:
        r = subprocess.run(child_command(run_dir, index, gpu), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           text=True, timeout=timeout_s, env=child_env(gpu))
    except subprocess.TimeoutExpired:                # subprocess.run has killed the child
        r = None
    if point_done(run_dir, pid):
        return read_csv(point_files(run_dir, pid)[0])
    row = child_failure_row(run_dir, p, pid, device, gpu, r, timeout_s)
    save_point(run_dir, pid, [row], [])
    return [row]


def child_failure_row(run_dir: Path, p, pid: str, device, gpu: str | None, r, timeout_s: float) -> dict:
    """The row of a child that died (r: its CompletedProcess) or overran (r None)."""
    if r is None:
        status, last = "timeout", (f"child process ran past its {timeout_s:.0f} s limit (theory's predicted work "
                                   f"x10 + a 300 s floor) and was killed")
    else:
        status = "error"
        last = "child process failed: " + (r.stderr.strip().splitlines() or [f"exit status {r.returncode}"])[-1][:300]
    row = failure_row(base_row(p, pid, device, p.resolved_dtype(device.kind)), status, last)
    if gpu is not None:                              # from run.json: asking CUDA would make this process a context
        row["gpu_uuid"] = read_meta(run_dir).get("gpu_uuids", {}).get(gpu, "")
    return row


def remeasure_child(run_dir: Path, index: int, p, pid: str, device, sweep=None, gpu: str | None = None) -> dict:
    """Parent side of the end-of-run re-measure of an isolated run: a fresh measurement of one point in a child,
    nothing recorded; {"rows", "samples", "kernels"} (kernels: the paired rounds' parts, or None), read from the
    child's hand-over file, which is removed; a child that failed gives its failure row."""
    out = run_dir / f".again-{pid}.json"
    timeout_s = timeout_for(run_dir, p, sweep, device.kind)
    try:
        r = subprocess.run(child_command(run_dir, index, gpu, out), stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True, timeout=timeout_s, env=child_env(gpu))
    except subprocess.TimeoutExpired:
        r = None
    if r is not None and r.returncode == 0 and out.exists():
        got = json.loads(out.read_text())
        out.unlink()
        return got
    out.unlink(missing_ok=True)
    return {"rows": [child_failure_row(run_dir, p, pid, device, gpu, r, timeout_s)], "samples": [], "kernels": None}


def canary_reference(meta: dict, gpu: str | None) -> tuple[float | None, float | None]:
    """(baseline s, slow threshold) a point's canary readings are compared with: its GPU's (--gpus, each
    baseline taken by that GPU's ceilings child) or the run's."""
    ref = meta.get("canary_by_gpu", {}).get(gpu) if gpu is not None else None
    if ref:
        return ref["baseline_s"], ref["slow_rel"]
    return meta.get("canary_baseline_s"), meta.get("canary_slow_rel")


def child_point(run_dir: Path, index: int, gpu: str | None = None, again: Path | None = None) -> int:
    """Child side: `python -m bench _point <run dir> <index> [<gpu>|- [<hand-over json>]]`, one point measured as
    the inline launcher does, its canary readings compared with the baseline the run's ceilings child took on
    this GPU; with a hand-over file, a fresh measurement for the end-of-run re-measure, written there only."""
    from bench.devices.select import get_device
    from bench.kernels.point import paired_kernels, run_kernel_cache
    from bench.launch.inline import measure_with_canary
    from bench.point.job import PointJob
    from bench.point.measure import measure_point
    from bench.sweep import load_run_sweep
    from bench.timing.canary import Canary
    from bench.timing.stats import SLOW_REL
    sweep, meta = load_run_sweep(run_dir)
    device = get_device(meta["device"], meta.get("threads", 1))
    p = sweep.points[index]
    pid = p.point_id(device.kind)
    kcache = run_kernel_cache(run_dir, device) if meta.get("kernels") else None
    base_s, slow_rel = canary_reference(meta, gpu)
    canary = Canary(device)
    canary.slow_rel = slow_rel or SLOW_REL
    if again is None:
        measure_with_canary(run_dir, p, pid, device, sweep, meta.get("profile", False), canary, base_s, kcache)
        return 0
    paired = paired_kernels(p, pid, device, kcache)
    rows, samples = measure_point(PointJob(p, pid, device, sweep, None, False, canary, base_s, paired))
    kernels = None
    if paired is not None:
        if rows and rows[0].get("status") == "ok" and paired.used:
            kernels = paired.parts(paired.used)
        paired.close()
    write_json(again, {"rows": rows, "samples": samples, "kernels": kernels})
    return 0


def probe_ceilings(parent, run_dir: Path, dtypes: list[str], log=sys.stderr) -> None:
    """Parent side: the ceilings (one per dtype) and the device's facts measured in a child pinned to the
    ParentCuda's GPU; the parent holds them afterwards (parent.set_facts)."""
    out = run_dir / f".ceilings-gpu{parent.index}.json"
    cmd = [sys.executable, "-m", "bench", "_ceilings", str(out), str(parent.threads), ",".join(dtypes)]
    try:
        r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                           timeout=CEILINGS_TIMEOUT_S, env=child_env(str(parent.index)))
    except subprocess.TimeoutExpired:
        raise ValueError(f"measuring the ceilings on GPU {parent.index} ran past {CEILINGS_TIMEOUT_S:.0f} s "
                         f"and was stopped") from None
    if r.returncode != 0 or not out.exists():
        last = (r.stderr.strip().splitlines() or [f"exit status {r.returncode}"])[-1][:300]
        raise ValueError(f"measuring the ceilings on GPU {parent.index} failed in its child process: {last}")
    parent.set_facts(json.loads(out.read_text()))
    out.unlink()
    print(f"GPU {parent.index}: {parent.name()} ({parent.uuid()})", file=log, flush=True)


def child_ceilings(out: Path, threads: int, dtypes: list[str]) -> int:
    """Child side: `python -m bench _ceilings <out> <threads> <dtype,...>`."""
    from bench.ceilings import measure_ceilings
    from bench.devices.select import get_device
    from bench.timing.canary import Canary, baseline
    device = get_device("cuda", threads)
    host = socket.gethostname()                # what bench.env.run_metadata records as "host"
    ceilings, detail = {}, {}
    for dt in dtypes:
        spec, detail[dt] = measure_ceilings(device, dt, host)
        ceilings[dt] = spec.to_json()          # theory's kind "gpu" (bench.ceilings)
    base = baseline(Canary(device))            # the canary's reference on this GPU, for the point children
    write_json(out, {"info": device.info(), "ceilings": ceilings, "detail": detail,
                     "canary": {"baseline_s": base.time_s, "slow_rel": base.slow_rel}})
    return 0
