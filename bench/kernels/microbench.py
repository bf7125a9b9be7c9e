"""Time one kernel alone, with the model's cache state, to a stable median with an interval.

Cache state: when the model's working set (weights + KV cache) exceeds the last-level cache, every weight and
cache tensor the model reads comes from DRAM; a microbenchmark that calls the same weight again reads it from
the cache instead (q_proj at d=512: 31 µs warm against ~2x that streamed; measured-facts.md). So for a "dram"
point the kernel rotates through enough copies of its cold operands (weights, KV cache) to span
ROTATE_SPAN x the last-level cache, and each call uses the next copy; for an "llc" point it reuses one copy.

A sample is enough consecutive calls to last SAMPLE_MIN_S (the rotation carrying on across samples); samples are taken until the
95% interval of the median (order statistics) is within STABLE_REL of it or the time budget is spent.

What a sample is, by device:
- CPU: the wall time per call of the batch; a CPU kernel runs in the calling thread, so host and device are one
  and `host_dispatch_s` stays empty.
- CUDA: two numbers per batch. Events around one launch (or around a batch the host feeds as the GPU drains it)
  read max(host dispatch, device time): a decode-sized kernel (2-5 µs on the GPU) launched by eager PyTorch
  (~5-10 µs of host work per op) would read the host. So the stream is first held by a spin kernel
  (torch.cuda._sleep) long enough for the host to queue the whole batch behind it; the start event fires when
  the spin ends and the kernels then run back to back: end - start over N calls is the kernel's *device* time.
  The host clock around the launch loop (no synchronize inside) over N is the *host dispatch* per launch.
`median_s` (and its interval) is always the device time per call: what the composed prediction sums per op
(bench/kernels/plan.py). `host_dispatch_s` is the host's cost per launch, recorded beside it in kernels.csv: on a
GPU a step of many small kernels takes at least the larger of its summed device time and its summed dispatch.
"""
import math
import statistics
import time
from dataclasses import dataclass

from bench.kernels.operands import operands

ROTATE_SPAN = 2.0             # copies span this many last-level caches
MAX_COPIES = 256
SAMPLE_MIN_S = 200e-6
STABLE_REL = 0.05
MIN_SAMPLES = 7
MIN_SAMPLES_LONG = 5          # kernels over LONG_S per call (big prefills): fewer samples, same interval rule
LONG_S = 5e-3
MAX_SAMPLES = 61
MAX_QUEUED_CALLS = 512        # CUDA: calls queued behind one spin (well inside the driver's launch queue)
HOLD_MARGIN = 2.0             # the spin lasts this many times the host's last launch loop, plus HOLD_FLOOR_S
HOLD_FLOOR_S = 50e-6
SPIN_CAL_CYCLES = 1_000_000   # one timed spin of this many GPU cycles converts seconds to cycles


@dataclass(frozen=True)
class KernelTime:
    median_s: float
    ci_low_s: float
    ci_high_s: float
    samples: int
    stable: bool
    cache_state: str          # "dram" (rotated copies) or "llc" (one warm copy)
    copies: int
    cold_bytes: int           # bytes of one copy of the rotated operands
    host_dispatch_s: float | None = None   # CUDA: median host seconds per launch (no sync); None on CPU


def median_interval(xs: list[float], z: float = 1.96) -> tuple[float, float, float]:
    """Median and its distribution-free ~95% interval: order statistics n/2 ± z·√n/2 (binomial)."""
    s = sorted(xs)
    n = len(s)
    half = z * math.sqrt(n) / 2
    lo = max(0, int(math.floor(n / 2 - half)))
    hi = min(n - 1, int(math.ceil(n / 2 + half)) - 1)
    return statistics.median(s), s[lo], s[hi]


def copies_for(cold_bytes: int, cache_state: str, llc_bytes: int | None) -> int:
    if cache_state != "dram" or cold_bytes == 0:
        return 1
    span = ROTATE_SPAN * (llc_bytes or 32 * 2**20)
    return max(1, min(MAX_COPIES, math.ceil(span / cold_bytes)))


class KernelSampler:
    """One kernel ready to time: its operands (rotated copies for a "dram" state) and how many calls make a
    sample. sample() times one sample; the rotation carries on across samples, so each copy waits its turn.
    clock: the host clock of the launch loop (tests hand in a simulated one)."""

    def __init__(self, kernel, device, cache_state: str, llc_bytes: int | None, clock=time.perf_counter):
        cold, self.hot, self.fn = operands(kernel, device)
        self.device, self.clock = device, clock
        self.queued = device.kind == "cuda"          # launches queue ahead of the device (module docstring)
        self.cold_bytes = sum(t.numel() * t.element_size() for t in cold)
        self.copies = copies_for(self.cold_bytes, cache_state, llc_bytes)
        self.sets = [cold] + [[t.clone() for t in cold] for _ in range(self.copies - 1)]
        self.fn(*self.sets[0], *self.hot)            # warm-up: lazy init, first-use algorithm choice
        device.sync()
        t = device.start()
        self.fn(*self.sets[0], *self.hot)
        self.one_s = max(device.stop(t), 1e-7)       # max(host, device) of one call: only sizes the batch
        self.calls = max(1, math.ceil(SAMPLE_MIN_S / self.one_s))
        if self.queued:
            self.calls = min(self.calls, MAX_QUEUED_CALLS)
            self.cycles_per_s = spin_rate(device)
            self.loop_s = self.one_s * self.calls    # the host's launch loop, until a sample measures it
        self.host_s: list[float] = []                # CUDA: host seconds per launch, one per sample
        self.state = "llc" if self.cold_bytes == 0 else cache_state   # activations only: just written
        self.i = 0

    def _batch(self) -> None:
        for _ in range(self.calls):
            self.fn(*self.sets[self.i % len(self.sets)], *self.hot)
            self.i += 1

    def sample(self) -> float:
        """Device seconds per call, over `calls` consecutive calls (CUDA: queued behind a spin, the host's launch
        loop kept in host_s). An "llc" kernel gets one untimed call first: spaced between other work
        (bench.kernels.paired), its operands would otherwise start cold."""
        if self.state == "llc":
            self.fn(*self.sets[self.i % len(self.sets)], *self.hot)
        if not self.queued:
            t = self.device.start()
            self._batch()
            return self.device.stop(t) / self.calls
        self.device.cuda._sleep(int((HOLD_MARGIN * self.loop_s + HOLD_FLOOR_S) * self.cycles_per_s))
        t = self.device.start()
        h0 = self.clock()
        self._batch()
        self.loop_s = self.clock() - h0
        self.host_s.append(self.loop_s / self.calls)
        return self.device.stop(t) / self.calls

    def min_samples(self) -> int:
        return MIN_SAMPLES_LONG if self.one_s > LONG_S else MIN_SAMPLES

    def result(self, samples: list[float]) -> KernelTime:
        med, lo, hi = median_interval(samples)
        host = statistics.median(self.host_s) if self.host_s else None
        return KernelTime(med, lo, hi, len(samples), (hi - lo) / 2 <= STABLE_REL * med, self.state, self.copies,
                          self.cold_bytes, host)


_SPIN_RATES: dict = {}


def spin_rate(device) -> float:
    """GPU cycles per second of torch.cuda._sleep (a spin kernel counting clock64 cycles), timed once per device
    with its events; the spin that holds a stream is sized from it."""
    key = (id(device.cuda), getattr(device, "index", 0))
    if key not in _SPIN_RATES:
        device.cuda._sleep(SPIN_CAL_CYCLES)          # first launch: module load
        device.sync()
        t = device.start()
        device.cuda._sleep(SPIN_CAL_CYCLES)
        _SPIN_RATES[key] = SPIN_CAL_CYCLES / max(device.stop(t), 1e-9)
    return _SPIN_RATES[key]


def time_kernel(kernel, device, cache_state: str, llc_bytes: int | None, budget_s: float = 0.06) -> KernelTime:
    """Alone, back to back: samples until the interval of the median is within STABLE_REL or the budget is spent."""
    k = KernelSampler(kernel, device, cache_state, llc_bytes)
    samples: list[float] = []
    t_end = time.perf_counter() + budget_s
    while len(samples) < MAX_SAMPLES:
        samples.append(k.sample())
        if len(samples) >= k.min_samples():
            med, lo, hi = median_interval(samples)
            if (hi - lo) / 2 <= STABLE_REL * med or time.perf_counter() > t_end:
                break
    return k.result(samples)
