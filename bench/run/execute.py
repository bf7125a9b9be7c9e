"""A run from its ceilings to its end: the points still to do (a resume skips finished ones), each handed to a
launcher (in this process, or one child per point or per GPU), the run's files assembled after each, then the
end of the run: noisy points re-measured, the ceilings again (drift), the summaries into run.json."""
import sys
import time
from pathlib import Path

from bench.kernels.point import assemble_kernels, not_composed_note
from bench.kernels.point import drop_point_kernels, save_point_kernels
from bench.launch.child import remeasure_child, run_child
from bench.launch.inline import InlineLauncher
from bench.launch.parallel import execute_parallel
from bench.run.ceilings import end_canary, end_ceilings, ensure_ceilings
from bench.run.endrun import remeasure_noisy
from bench.run.summary import record_profile_overhead, summarize
from bench.store.meta import read_meta, update_meta
from bench.store.points import assemble, point_done
from bench.sweep import Sweep

REMEASURE_POINTS_S = 10       # end-of-run re-measure budget, in units of the sweep's max_point_s


def run_points(run_dir: Path, ids: list[str], sweep: Sweep, launcher, log) -> None:
    """The points still to do, one after another, the run's files assembled after each."""
    todo = [(i, p, pid) for i, (p, pid) in enumerate(zip(sweep.points, ids)) if not point_done(run_dir, pid)]
    done_before = len(ids) - len(todo)
    if done_before:
        print(f"resuming: {done_before} of {len(ids)} points already done", file=log, flush=True)
    t_start = time.perf_counter()
    kernels = read_meta(run_dir).get("kernels", False)      # asked for: a point not composed says why
    for k, (i, p, pid) in enumerate(todo):
        t0 = time.perf_counter()
        rows = launcher.run(i, p, pid)
        assemble(run_dir, ids)
        assemble_kernels(run_dir, ids, point_done)
        elapsed = time.perf_counter() - t_start
        eta = elapsed / (k + 1) * (len(todo) - k - 1)
        print(f"[{done_before + k + 1}/{len(ids)}] {p.label()}  {rows[0]['status']}  "
              f"{time.perf_counter() - t0:.1f} s  (ETA {eta:.0f} s)"
              f"{not_composed_note(p, kernels, rows[0]['status'])}", file=log, flush=True)


class ChildLauncher:
    """One child process per point (an isolated CUDA run); also what the end-of-run re-measure of such a run
    runs, in a child on `gpu` (the run's first GPU with --gpus), its paired kernels handed back with its rows."""

    def __init__(self, run_dir: Path, sweep: Sweep, device, gpu: str | None = None):
        self.run_dir, self.sweep, self.device, self.gpu = run_dir, sweep, device, gpu
        self.index = {p.point_id(device.kind): i for i, p in enumerate(sweep.points)}
        self._again: dict = {}

    def run(self, index: int, p, pid: str) -> list[dict]:
        return run_child(self.run_dir, index, p, pid, self.device, self.sweep, gpu=self.gpu)

    # the end-of-run re-measure (bench/run/endrun.py remeasure_noisy), as InlineLauncher's
    def measure(self, p, pid: str) -> tuple[list[dict], list[dict]]:
        got = remeasure_child(self.run_dir, self.index[pid], p, pid, self.device, self.sweep, self.gpu)
        self._again[pid] = got.get("kernels")
        return got["rows"], got["samples"]

    def replacing(self, pid: str) -> None:
        drop_point_kernels(self.run_dir, pid)

    def kept(self, pid: str, rows: list[dict], second: bool) -> None:
        parts = self._again.pop(pid, None)
        if second and parts:
            save_point_kernels(self.run_dir, pid, parts)


def run_finished(run_dir: Path, sweep: Sweep, device_kind: str) -> bool:
    """Every point measured and the end of the run recorded (repeat_summary is execute's last write)."""
    meta = read_meta(run_dir)
    return "repeat_summary" in meta and all(point_done(run_dir, p.point_id(device_kind)) for p in sweep.points)


def execute(run_dir: Path, sweep: Sweep, device, log=sys.stderr) -> Path:
    ensure_ceilings(run_dir, sweep, device, log)
    meta = read_meta(run_dir)
    isolate = meta.get("isolate", False)
    ids = [p.point_id(device.kind) for p in sweep.points]
    if (meta.get("executor") or {}).get("name") == "ray":     # one Ray task per point across a cluster
        from bench.launch.ray import execute_ray
        execute_ray(run_dir, sweep, device, meta, log)
        record_profile_overhead(run_dir)
        update_meta(run_dir, repeat_summary=summarize(run_dir, ids))
        return run_dir
    gpus = meta.get("gpus") if isolate else None
    if gpus:                                  # --gpus: points in parallel, one child per GPU (CUDA_VISIBLE_DEVICES)
        execute_parallel(run_dir, sweep, device, meta, log)
        launcher = ChildLauncher(run_dir, sweep, device, gpu=str(gpus[0]))
    else:
        launcher = ChildLauncher(run_dir, sweep, device) if isolate else InlineLauncher(run_dir, sweep, device, meta)
        run_points(run_dir, ids, sweep, launcher, log)
    if sweep.max_retries != 0:                     # fixed-count sweeps keep their first measurement
        remeasure_noisy(run_dir, dict(zip(ids, sweep.points)), REMEASURE_POINTS_S * sweep.max_point_s, launcher, log)
    assemble(run_dir, ids)
    assemble_kernels(run_dir, ids, point_done)
    print("measuring ceilings again (drift) ...", file=log, flush=True)
    end_ceilings(run_dir, device, sorted({p.resolved_dtype(device.kind) for p in sweep.points}), log)
    end_canary(run_dir, getattr(launcher, "canary", None))
    record_profile_overhead(run_dir)
    fields = {"repeat_summary": summarize(run_dir, ids)}
    kcache = getattr(launcher, "kcache", None)
    if kcache is not None:                # the per-box kernel cache's sentinel check, one entry per process
        fields["kernel_cache"] = read_meta(run_dir).get("kernel_cache", []) + [kcache.report()]
    update_meta(run_dir, **fields)
    return run_dir
