"""One point to measure, with everything its measurement depends on: replaces the nine parameters that
measure_point used to take."""
from dataclasses import dataclass
from pathlib import Path

from bench.modes import ExecutionMode, mode
from bench.sweep import Point, Sweep


@dataclass(frozen=True)
class PointJob:
    point: Point
    point_id: str
    device: object                           # a bench.devices.base.Device
    sweep: Sweep                             # its repeat policy: repeats, warm-up, stopping rule, retries
    run_dir: Path | None = None              # None: rows returned, nothing recorded (the end-of-run re-measure)
    profile: bool = False                    # a profiled trajectory after the timed ones (profile.csv)
    canary: object = None                    # a bench.timing.canary.Canary marking disturbed repeats
    canary_base_s: float | None = None       # the run's canary baseline
    paired: object = None                    # a bench.kernels.paired.PairedKernels: rounds between the repeats

    @property
    def dtype(self) -> str:
        return self.point.resolved_dtype(self.device.kind)

    @property
    def mode(self) -> ExecutionMode:
        return mode(self.point.execution)
