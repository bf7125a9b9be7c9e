"""A point's timed trajectories: the cold one, warm-up, a memory probe, then fixed or adaptive repeats.

A repeat is one whole trajectory (prefill + all decode steps) on a fresh cache. Warm-up trajectories run
first, for at least `warmup_s` (clocks ramp, kernels load lazily, libraries pick algorithms per shape on
first use); the very first (cold) trajectory is kept apart. A cold trajectory that alone lasted
COLD_IS_WARMUP_S or twice `warmup_s` (hundreds of decode steps) has already run every shape many times and
stands for the warm-up (compiled modes still warm up until nothing new compiles).

Adaptive repeats run until the stopping rule is satisfied.

Each repeat is bracketed by canary readings (the one after a repeat is the one before the next). A repeat
with a slow canary on either side is marked `disturbed`, kept in samples.csv, left out of the statistics and
measured again, at most `max_retries` times per point. If fewer than min_repeats quiet repeats come, the
statistics use every repeat and the point is marked `interference`.
"""
import time
from dataclasses import dataclass, field

from bench.timing import trajectory           # through the module: a test's patch of run_trajectory reaches here
from bench.timing.canary import slow
from bench.timing.stats import SLOW_REL, StepStats, StopRule, median_ci, stats

COLD_IS_WARMUP_S = 1.0          # 512-token trajectories (5.7 s each here) used to spend three of them warming up

LONG_TRAJECTORY_STEPS = 32      # above this many decode steps, the mean decode step stands for the steps


@dataclass
class RepeatLog:
    repeats: list                                  # every Trajectory, in order
    disturbed: list[bool]
    quiet_target_met: bool
    interference: bool
    repeats_s: float                               # wall time in the repeats themselves
    canary_s: float = 0.0
    canary_readings: list[float] = field(default_factory=list)

    @property
    def used(self) -> list:
        """The trajectories the statistics are taken over."""
        return [self.repeats[i] for i in self.used_indices]

    @property
    def used_indices(self) -> list[int]:
        """Indices (into repeats) of the trajectories the statistics are taken over."""
        return [i for i, d in enumerate(self.disturbed) if self.interference or not d]


def tracked_rows(trajectories: list) -> list[list[float]]:
    """The rows the stopping rule watches: prefill and each decode step, or prefill and the mean decode step
    of each trajectory when the trajectory is long."""
    if not trajectories:
        return []
    steps = len(trajectories[0].times_s)
    if steps - 1 <= LONG_TRAJECTORY_STEPS:
        return [[t.times_s[i] for t in trajectories] for i in range(steps)]
    rows = [[t.times_s[0] for t in trajectories]]
    rows.append([sum(t.times_s[1:]) / (steps - 1) for t in trajectories])
    return rows


def collect(run, rule: StopRule, canary=None, base_s: float | None = None, max_retries: int | None = None,
            clock=time.perf_counter, between=None) -> RepeatLog:
    """run(): one whole trajectory. canary: a bench.timing.canary.Canary (or None: nothing is marked).
    between(): after each trajectory and its canary reading (bench.kernels.paired: the point's kernel round); its
    time counts against the point's budget, not as repeat time."""
    max_retries = rule.min_repeats if max_retries is None else max_retries
    trajs, disturbed, readings = [], [], []
    spent0 = canary.spent_s if canary else 0.0
    before = canary.read("repeat") if canary else None
    if before is not None:
        readings.append(before)
    t_start, repeats_s, last_s = clock(), 0.0, 0.0
    while True:
        r0 = clock()
        trajs.append(run())
        last_s = clock() - r0
        repeats_s += last_s
        after = canary.read("repeat") if canary else None
        if after is not None:
            readings.append(after)
        if between is not None:                    # after the canary: its buffers would undo a model's rewarm
            between()
            last_s = clock() - r0                  # the budget plans whole repeats: trajectory, canary, round
        rel = getattr(canary, "slow_rel", SLOW_REL)
        disturbed.append(bool(canary) and (slow(before, base_s, rel) or slow(after, base_s, rel)))
        before = after
        quiet = [t for t, d in zip(trajs, disturbed) if not d]
        elapsed = clock() - t_start
        if rule.done(tracked_rows(quiet), elapsed, last_s) and len(quiet) >= rule.min_repeats:
            break
        short = len(quiet) < rule.min_repeats
        if short and len(trajs) >= rule.min_repeats and (sum(disturbed) >= max_retries
                                                         or elapsed + last_s > rule.max_point_s):
            break                                  # no quiet window came within the retries or the budget
        if len(trajs) >= rule.max_repeats + max_retries:
            break
    quiet = [t for t, d in zip(trajs, disturbed) if not d]
    interference = len(quiet) < rule.min_repeats
    met = not interference and rule.all_met(tracked_rows(quiet))
    return RepeatLog(trajs, disturbed, met, interference, repeats_s,
                     (canary.spent_s - spent0) if canary else 0.0, readings)


def row_intervals(log: RepeatLog, rule: StopRule) -> list:
    """One MedianCI per pass of the trajectory (prefill, decode steps), over the trajectories used."""
    used = log.used
    return [median_ci([t.times_s[i] for t in used]) for i in range(len(used[0].times_s))]


@dataclass
class Measured:
    cold: trajectory.Trajectory
    repeats: list[trajectory.Trajectory]
    memory: trajectory.Trajectory                 # an extra trajectory with memory probes around each pass
    warmup_trajectories: int
    log: object = None                            # RepeatLog when the repeats were adaptive
    warmup_s: float = 0.0                         # wall time of the cold, warm-up and memory trajectories

    @property
    def used(self) -> list[trajectory.Trajectory]:
        return [self.repeats[i] for i in self.used_indices]

    @property
    def used_indices(self) -> list[int]:
        return self.log.used_indices if self.log is not None else list(range(len(self.repeats)))

    def step_stats(self) -> list[StepStats]:
        return [stats([r.times_s[i] for r in self.used]) for i in range(len(self.cold.times_s))]


def measure(model, device, input_ids, generated: int, cache: str, max_cache_len: int | None,
            repeats: int, warmup_s: float, rule=None, canary=None, canary_base_s=None,
            max_retries: int | None = None, settled=None, between=None) -> Measured:
    """rule: a bench.timing.stats.StopRule for adaptive repeats (with the canary marking disturbed ones);
    None: exactly `repeats` trajectories. settled(): called after the cold and each warm-up trajectory; warm-up
    goes on until it is true (compiled modes: until a trajectory compiles nothing new; bench.modes.CompileWatch).
    between(): after each timed repeat (bench.kernels.paired: a round of the point's kernels)."""
    run = lambda probe=False: trajectory.run_trajectory(model, device, input_ids, generated, cache, max_cache_len, probe)
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
    with device.sampling() as sampler:   # CUDA: NVML clocks, power, clock-event reasons at the repeats' ends
        tick = getattr(sampler, "sample", None)      # at a boundary, never from a thread (bench/devices/nvml.py)
        timed = run if tick is None else lambda: (run(), tick())[0]
        if rule is None:
            fixed = []
            for _ in range(repeats):
                fixed.append(timed())
                if between is not None:
                    between()
            return Measured(cold, fixed, memory, n_warm, None, warm_wall_s)
        log = collect(timed, rule, canary, canary_base_s, max_retries, between=between)
    return Measured(cold, log.repeats, memory, n_warm, log, warm_wall_s)
