"""The interference canary: a fixed small matmul and a copy (tens of ms), timed before each point, between
repeats and after. Its baseline is taken at the start of the run; a reading more than the run's slow threshold
above it means the box was slower than it was then (a neighbour's job, a clock or cache shift), whatever the
point measures.

A reading is the minimum of READ_TIMINGS timings: noise on a shared box is one-sided (a neighbour only ever
slows the work down), so a transient that hits one timing does not move the reading, while a slowdown that
lasts the whole reading does. The slow threshold is SLOW_REL or the canary's own spread at the start of the run,
whichever is larger: on this 2-core box quiet min-of-5 readings still scatter by about ±10%, and a 5% threshold
below that would mark every repeat disturbed (the committed run of 2026-11-23 11:44 did exactly that)."""
import statistics
import time
from dataclasses import dataclass

import torch

from bench.timing.stats import SLOW_REL

# (matmul n, copy elements, inner repeats): ~3 ms of matmul and ~2.5 ms of copy per timing on one quiet CPU
# core (35 GFLOP/s, 7 GB/s copy); measured 2.5-3.1 ms per timing here, so a reading of five is ~15 ms.
READ_TIMINGS = 5
BASELINE_READINGS = 7
# by size class (bench/devices/base.py); "tiny", the CPU stand-in of a CUDA device, does the CPU's work
SHAPES = {"cpu": (384, 2 * 2**20, 1), "cuda": (4096, 64 * 2**20, 3),    # ~3 ms fp32 matmul + 0.2 ms copy per pass (H100-class)
          "tiny": (384, 2 * 2**20, 1)}


class Canary:
    def __init__(self, device, clock=time.perf_counter):
        n, elems, self.inner = SHAPES.get(device.size_class, SHAPES["cpu"])
        gen = torch.Generator(device="cpu").manual_seed(0)
        self.device = device
        self.a = torch.rand(n, n, generator=gen).to(device.torch_device)
        self.b = torch.rand(n, n, generator=gen).to(device.torch_device)
        self.src = torch.rand(elems, generator=gen).to(device.torch_device)
        self.dst = torch.empty_like(self.src)
        self.clock = clock
        self.t0 = clock()
        self.series: list[dict] = []              # {t_s, where, time_s}: every reading taken by this process
        self.spent_s = 0.0                        # wall time spent in the canary itself
        self.slow_rel = SLOW_REL                  # the run's threshold (set from its Baseline)
        self._once()                              # first call pays lazy init; never a reading

    def _once(self) -> float:
        self.device.sync()
        t = self.device.start()
        for _ in range(self.inner):
            torch.mm(self.a, self.b)
            self.dst.copy_(self.src)
        return self.device.stop(t)

    def read(self, where: str = "") -> float:
        """One reading: the fastest of READ_TIMINGS timings of the fixed work (s)."""
        w0 = self.clock()
        value = min(self._once() for _ in range(READ_TIMINGS))
        self.spent_s += self.clock() - w0
        self.series.append({"t_s": round(w0 - self.t0, 3), "where": where, "time_s": value})
        return value


@dataclass(frozen=True)
class Baseline:
    time_s: float            # the median of the readings at the start of the run
    slow_rel: float          # a later reading above time_s × (1 + slow_rel) marks the box as slower than then


def baseline(canary: Canary, readings: int = BASELINE_READINGS) -> Baseline:
    """The run's reference: the median of a few readings at the start of the run, and the slow threshold: the
    largest of those readings' excess over their median, never below SLOW_REL (a slowdown the canary's own
    scatter could produce is not called interference)."""
    xs = [canary.read("baseline") for _ in range(readings)]
    med = statistics.median(xs)
    return Baseline(med, max(SLOW_REL, max(xs) / med - 1))


def baseline_s(canary: Canary, readings: int = BASELINE_READINGS) -> float:
    return baseline(canary, readings).time_s


def slow(reading_s: float, base_s: float | None, slow_rel: float = SLOW_REL) -> bool:
    return base_s is not None and base_s > 0 and reading_s > base_s * (1 + slow_rel)
