"""Time one kernel alone, with the model's cache state, to a stable median with an interval.

Cache state: when the model's working set (weights + KV cache) exceeds the last-level cache, every weight and
cache tensor the model reads comes from DRAM; a microbenchmark that calls the same weight again reads it from
the cache instead (q_proj at d=512: 31 µs warm against ~2x that streamed; measured-facts.md). So for a "dram"
point the kernel rotates through enough copies of its cold operands (weights, KV cache) to span
ROTATE_SPAN x the last-level cache, and each call uses the next copy; for an "llc" point it reuses one copy.

A sample is enough consecutive calls to last SAMPLE_MIN_S (the rotation carrying on across samples); samples are taken until the
95% interval of the median (order statistics) is within STABLE_REL of it or the time budget is spent.
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


def time_kernel(kernel, device, cache_state: str, llc_bytes: int | None, budget_s: float = 0.06) -> KernelTime:
    cold, hot, fn = operands(kernel, device)
    cold_bytes = sum(t.numel() * t.element_size() for t in cold)
    n_copies = copies_for(cold_bytes, cache_state, llc_bytes)
    sets = [cold] + [[t.clone() for t in cold] for _ in range(n_copies - 1)]
    fn(*sets[0], *hot)                              # warm-up: lazy init, first-use algorithm choice
    device.sync()
    t = device.start()
    fn(*sets[0], *hot)
    one_s = max(device.stop(t), 1e-7)
    calls = max(1, math.ceil(SAMPLE_MIN_S / one_s))
    samples: list[float] = []
    t_end = time.perf_counter() + budget_s
    i = 0                                           # rotation continues across samples: each copy waits its turn
    while len(samples) < MAX_SAMPLES:
        t = device.start()
        for _ in range(calls):
            fn(*sets[i % len(sets)], *hot)
            i += 1
        samples.append(device.stop(t) / calls)
        if len(samples) >= (MIN_SAMPLES_LONG if one_s > LONG_S else MIN_SAMPLES):
            med, lo, hi = median_interval(samples)
            if (hi - lo) / 2 <= STABLE_REL * med or time.perf_counter() > t_end:
                break
    med, lo, hi = median_interval(samples)
    state = "llc" if cold_bytes == 0 else cache_state     # activations only: the previous op just wrote them
    return KernelTime(med, lo, hi, len(samples), (hi - lo) / 2 <= STABLE_REL * med, state, n_copies, cold_bytes)
