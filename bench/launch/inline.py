"""One point in this process, bracketed by canary readings (before, between repeats, after); its slice of the
canary's series is kept. Its kernels are timed (paired rounds, or after it from the per-box cache) and saved
before its rows land, so a point is whole or absent. Also what the end-of-run re-measure runs (bench/run/endrun.py)."""
import time
from pathlib import Path

from bench.kernels.point import (drop_point_kernels, measure_point_kernels, paired_kernels, run_kernel_cache,
                                 save_paired_kernels)
from bench.point.job import PointJob
from bench.point.measure import measure_point
from bench.store.meta import update_meta
from bench.store.points import save_point
from bench.store.repeats import add_canary, add_wall
from bench.sweep import Point, Sweep
from bench.timing.canary import Canary, baseline
from bench.timing.stats import SLOW_REL


def measure_with_canary(run_dir: Path, p: Point, pid: str, device, sweep: Sweep, profile: bool, canary,
                        base_s: float | None, kcache=None) -> list[dict]:
    k0 = len(canary.series)
    canary.read("point-start")
    paired = paired_kernels(p, pid, device, kcache)
    rows, samples = measure_point(PointJob(p, pid, device, sweep, run_dir, profile, canary, base_s, paired))
    canary.read("point-end")
    add_canary(run_dir, pid, canary.series[k0:])
    if paired is not None:
        k0_s = time.perf_counter()
        save_paired_kernels(run_dir, pid, rows, paired)
        add_wall(run_dir, pid, "kernels_s", paired.rounds_s + time.perf_counter() - k0_s)
    elif kcache is not None:
        k0_s = time.perf_counter()
        measure_point_kernels(run_dir, p, pid, device, rows, kcache)
        add_wall(run_dir, pid, "kernels_s", time.perf_counter() - k0_s)
    save_point(run_dir, pid, rows, samples)
    return rows


class InlineLauncher:
    """Points measured in this process: the run's canary and kernel cache, and the end-of-run re-measure
    (a re-measured point brings its own paired kernels, kept or dropped with the measurement they go with)."""

    def __init__(self, run_dir: Path, sweep: Sweep, device, meta: dict):
        self.run_dir, self.sweep, self.device = run_dir, sweep, device
        self.profile = meta.get("profile", False)
        self.kcache = run_kernel_cache(run_dir, device) if meta.get("kernels") else None
        self.canary = Canary(device)
        if meta.get("canary_baseline_s") is None:          # the run's reference, taken once
            base = baseline(self.canary)
            meta = update_meta(run_dir, canary_baseline_s=base.time_s, canary_slow_rel=base.slow_rel)
        self.canary.slow_rel = meta.get("canary_slow_rel", SLOW_REL)     # runs from before the threshold: 5%
        self.base_s = meta.get("canary_baseline_s")
        self._again: dict = {}

    def run(self, index: int, p: Point, pid: str) -> list[dict]:
        return measure_with_canary(self.run_dir, p, pid, self.device, self.sweep, self.profile, self.canary,
                                   self.base_s, self.kcache)

    # the end-of-run re-measure (bench/run/endrun.py remeasure_noisy)
    def measure(self, p: Point, pid: str) -> tuple[list[dict], list[dict]]:
        """A fresh measurement of one point: rows returned, nothing recorded, no profile."""
        self._again[pid] = paired_kernels(p, pid, self.device, self.kcache)
        return measure_point(PointJob(p, pid, self.device, self.sweep, None, False, self.canary, self.base_s,
                                      self._again[pid]))

    def replacing(self, pid: str) -> None:
        """The point's files are about to be replaced by the second measurement: its kernel files go first."""
        drop_point_kernels(self.run_dir, pid)

    def kept(self, pid: str, rows: list[dict], second: bool) -> None:
        """The kept set is in place: the second measurement's paired kernels saved with it, or closed."""
        paired = self._again.pop(pid, None)
        if paired is None:
            return
        if second:
            save_paired_kernels(self.run_dir, pid, rows, paired)
        else:
            paired.close()
