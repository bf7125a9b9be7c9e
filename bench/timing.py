"""Time a prefill and every decode step directly on the model's own KV cache.

A repeat is one whole trajectory (prefill + all decode steps) on a fresh cache. Warm-up trajectories run
first, for at least `warmup_s` (clocks ramp, kernels load lazily, libraries pick algorithms per shape on
first use); the very first (cold) trajectory is kept apart. A cold trajectory that alone lasted
COLD_IS_WARMUP_S or twice `warmup_s` (hundreds of decode steps) has already run every shape many times and
stands for the warm-up (compiled modes still warm up until nothing new compiles). The next token stays on the device (no .item()).
"""
import statistics
import time
from dataclasses import dataclass, field

import torch

from bench.device import MemorySample
from bench.kvcache import cache_tensor_bytes, new_cache

COLD_IS_WARMUP_S = 1.0          # 512-token trajectories (5.7 s each here) used to spend three of them warming up


@dataclass
class Trajectory:
    times_s: list[float]                          # index 0: prefill; 1..: decode steps 0..
    kv_bytes: list[int]                           # cache tensor bytes after each pass
    memory: list[MemorySample] = field(default_factory=list)


def run_trajectory(model, device, input_ids, generated: int, cache: str, max_cache_len: int | None,
                   probe_memory: bool = False) -> Trajectory:
    """Prefill input_ids, then generated−1 decode steps; time each pass with the device timer."""
    past = new_cache(model, cache, max_cache_len)
    times, kv, mem = [], [], []
    tokens = input_ids
    with torch.inference_mode():
        for _ in range(generated):
            if probe_memory:
                device.reset_peak()
            device.sync()
            t = device.start()
            out = model(input_ids=tokens, past_key_values=past, use_cache=True, logits_to_keep=1)
            times.append(device.stop(t))
            if probe_memory:
                mem.append(device.read_peak())
            kv.append(cache_tensor_bytes(past))
            tokens = out.logits[:, -1].argmax(-1, keepdim=True)   # stays on the device
    return Trajectory(times, kv, mem)


@dataclass
class StepStats:
    median_s: float
    p10_s: float
    p90_s: float
    n: int


def quantile(xs: list[float], q: float) -> float:
    s = sorted(xs)
    if len(s) == 1:
        return s[0]
    pos = q * (len(s) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def stats(xs: list[float]) -> StepStats:
    return StepStats(statistics.median(xs), quantile(xs, 0.1), quantile(xs, 0.9), len(xs))


@dataclass
class Measured:
    cold: Trajectory
    repeats: list[Trajectory]
    memory: Trajectory                            # an extra trajectory with memory probes around each pass
    warmup_trajectories: int
    log: object = None                            # bench.repeat.loop.RepeatLog when the repeats were adaptive
    warmup_s: float = 0.0                         # wall time of the cold, warm-up and memory trajectories

    @property
    def used(self) -> list[Trajectory]:
        return [self.repeats[i] for i in self.used_indices]

    @property
    def used_indices(self) -> list[int]:
        return self.log.used_indices if self.log is not None else list(range(len(self.repeats)))

    def step_stats(self) -> list[StepStats]:
        return [stats([r.times_s[i] for r in self.used]) for i in range(len(self.cold.times_s))]


def measure(model, device, input_ids, generated: int, cache: str, max_cache_len: int | None,
            repeats: int, warmup_s: float, rule=None, canary=None, canary_base_s=None,
            max_retries: int | None = None, settled=None, between=None) -> Measured:
    """rule: a bench.repeat.stats.StopRule for adaptive repeats (with the canary marking disturbed ones);
    None: exactly `repeats` trajectories. settled(): called after the cold and each warm-up trajectory; warm-up
    goes on until it is true (compiled modes: until a trajectory compiles nothing new; bench.modes.CompileWatch).
    between(): after each timed repeat (bench.kernels.paired: a round of the point's kernels)."""
    run = lambda probe=False: run_trajectory(model, device, input_ids, generated, cache, max_cache_len, probe)
    settled = settled or (lambda: True)
    w0 = time.perf_counter()
    cold = run()
    done = settled()
    n_warm, t0 = 0, time.perf_counter()
    want_warm = t0 - w0 < max(COLD_IS_WARMUP_S, 2 * warmup_s)
    while not done or (want_warm and (n_warm == 0 or time.perf_counter() - t0 < warmup_s)):
        run()
        n_warm += 1
        done = settled()
    device.empty_cache()      # CUDA: the probe starts from an empty caching allocator, or reserved stays flat
    memory = run(probe=True)
    warm_wall_s = time.perf_counter() - w0
    with device.sampling():   # CUDA: NVML clocks, power, throttle reasons sampled while the repeats run
        if rule is None:
            fixed = []
            for _ in range(repeats):
                fixed.append(run())
                if between is not None:
                    between()
            return Measured(cold, fixed, memory, n_warm, None, warm_wall_s)
        from bench.repeat.loop import collect
        log = collect(run, rule, canary, canary_base_s, max_retries, between=between)
    return Measured(cold, log.repeats, memory, n_warm, log, warm_wall_s)
