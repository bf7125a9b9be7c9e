"""The interference canary: a fixed small matmul and a copy (tens of ms), timed before each point, between
repeats and after. Its baseline is taken at the start of the run; a reading more than SLOW_REL above it means
the box was slower than it was then (a neighbour's job, a clock or cache shift), whatever the point measures."""
import statistics
import time

import torch

from bench.repeat.stats import SLOW_REL

# (matmul n, copy elements, inner repeats): ~3 ms of matmul and ~2.5 ms of copy per timing on one quiet CPU
# core (35 GFLOP/s, 7 GB/s copy), three timings per reading: ~17 ms (30-50 ms measured under contention).
SHAPES = {"cpu": (384, 2 * 2**20, 1), "cuda": (4096, 64 * 2**20, 3)}    # ~3 ms fp32 matmul + 0.2 ms copy per pass (H100-class)


class Canary:
    def __init__(self, device, clock=time.perf_counter):
        n, elems, self.inner = SHAPES.get(device.kind, SHAPES["cpu"])
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
        self._once()                              # first call pays lazy init; never a reading

    def _once(self) -> float:
        self.device.sync()
        t = self.device.start()
        for _ in range(self.inner):
            torch.mm(self.a, self.b)
            self.dst.copy_(self.src)
        return self.device.stop(t)

    def read(self, where: str = "") -> float:
        """One reading: the median of three timings of the fixed work (s)."""
        w0 = self.clock()
        value = statistics.median(self._once() for _ in range(3))
        self.spent_s += self.clock() - w0
        self.series.append({"t_s": round(w0 - self.t0, 3), "where": where, "time_s": value})
        return value


def baseline_s(canary: Canary, readings: int = 5) -> float:
    """The run's reference: the median of a few readings at the start of the run."""
    return statistics.median(canary.read("baseline") for _ in range(readings))


def slow(reading_s: float, base_s: float | None) -> bool:
    return base_s is not None and base_s > 0 and reading_s > base_s * (1 + SLOW_REL)
