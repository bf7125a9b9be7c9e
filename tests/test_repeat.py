"""Adaptive repeats: the order-statistic interval, the stopping rule on synthetic samples, the repeat loop."""
import random
from math import comb

import pytest

from bench.timing.repeats import collect, tracked_rows
from bench.timing.stats import StopRule, median_ci, order_index
from bench.timing.trajectory import Trajectory


def test_order_index_matches_binomial_coverage():
    assert order_index(5) is None                        # 2/32 = 6.25% > 5%: no 95% interval from 5 samples
    assert order_index(6) == 1                           # [min, max] covers with 1 − 2/64
    for n in (6, 10, 20, 50):
        j = order_index(n)
        miss = 2 * sum(comb(n, i) for i in range(j)) / 2 ** n
        miss_next = 2 * sum(comb(n, i) for i in range(j + 1)) / 2 ** n
        assert miss <= 0.05 < miss_next                  # the tightest interval that still covers 95%


def test_median_ci_brackets_median_and_flags_too_few():
    ci = median_ci([3.0, 1.0, 2.0])
    assert (ci.low_s, ci.median_s, ci.high_s, ci.covers) == (1.0, 2.0, 3.0, False)
    assert not ci.met(1.0)                               # too few samples never meets a target
    ci = median_ci([1.0 + 0.001 * i for i in range(20)])
    assert ci.covers and ci.low_s <= ci.median_s <= ci.high_s and ci.met(0.02)


class FakeRun:
    """A trajectory source with a chosen noise level; a fake clock advances by each repeat's cost."""
    def __init__(self, rel_noise: float, cost_s: float = 0.1, steps: int = 4, seed: int = 0):
        self.rng, self.noise, self.cost, self.steps, self.now = random.Random(seed), rel_noise, cost_s, steps, 0.0

    def clock(self) -> float:
        return self.now

    def __call__(self) -> Trajectory:
        self.now += self.cost
        return Trajectory([0.01 * (1 + self.noise * self.rng.random()) for _ in range(self.steps)], [0] * self.steps)


def test_stops_early_on_quiet_data():
    run = FakeRun(rel_noise=0.001)
    log = collect(run, StopRule(6, 50, 100.0), clock=run.clock)
    assert len(log.repeats) == 6 and log.quiet_target_met and not log.interference


def test_keeps_going_on_noisy_data():
    run = FakeRun(rel_noise=0.5)
    log = collect(run, StopRule(6, 40, 100.0), clock=run.clock)
    assert len(log.repeats) == 40 and not log.quiet_target_met


def test_no_retries_still_keeps_going_on_noisy_data():
    run = FakeRun(rel_noise=0.5)
    log = collect(run, StopRule(6, 20, 100.0), FakeCanary([]), base_s=1.0, max_retries=0, clock=run.clock)
    assert len(log.repeats) == 20 and not any(log.disturbed)


def test_respects_the_budget():
    run = FakeRun(rel_noise=0.5, cost_s=0.25)
    log = collect(run, StopRule(6, 1000, 3.0), clock=run.clock)
    assert run.now <= 3.0 and len(log.repeats) == 12     # never starts a repeat it cannot finish in budget


def test_min_repeats_beats_the_budget():
    run = FakeRun(rel_noise=0.001, cost_s=2.0)
    log = collect(run, StopRule(6, 30, 1.0), clock=run.clock)
    assert len(log.repeats) == 6


class FakeCanary:
    """Readings from a script: 1.0 is the baseline speed, 1.2 a disturbed box."""
    def __init__(self, readings):
        self.readings, self.spent_s = list(readings), 0.0

    def read(self, where=""):
        return self.readings.pop(0) if self.readings else 1.0


def test_disturbed_repeats_are_marked_and_measured_again():
    run = FakeRun(rel_noise=0.001)
    # before r0, after r0, after r1, ...: the box is slow around repeat 2 only
    log = collect(run, StopRule(6, 50, 100.0), FakeCanary([1.0, 1.0, 1.0, 1.2, 1.0]), base_s=1.0, clock=run.clock)
    assert log.disturbed[:4] == [False, False, True, True]
    assert len(log.used) == 6 and len(log.repeats) == 8 and not log.interference


def test_no_quiet_window_sets_interference():
    run = FakeRun(rel_noise=0.001)
    log = collect(run, StopRule(6, 50, 100.0), FakeCanary([1.3] * 100), base_s=1.0, max_retries=3, clock=run.clock)
    assert log.interference and all(log.disturbed) and len(log.used) == len(log.repeats) == 6


def test_long_trajectories_track_the_mean_decode_step():
    trajs = [Trajectory([1.0] + [0.1] * 100, [0] * 101) for _ in range(3)]
    rows = tracked_rows(trajs)
    assert len(rows) == 2 and rows[1] == pytest.approx([0.1] * 3)


def test_canary_marks_an_injected_slowdown(monkeypatch):
    """A busy process pinned to the measuring process's CPU halves its share: the canary must see it.
    A reading is the fastest of five timings; on a fast day one timing (~1.4 ms) fits inside one scheduler slice
    (a few ms with two runnable tasks), so the fastest could dodge the neighbour entirely and the test failed on a
    quiet box. Each timing here repeats the canary's work six times (~8 ms), longer than a slice."""
    import os
    import subprocess
    import sys
    from bench.devices.cpu import CpuDevice
    from bench.timing import canary as canary_mod
    from bench.timing.canary import Canary, baseline_s

    n, elems, _ = canary_mod.SHAPES["cpu"]
    monkeypatch.setitem(canary_mod.SHAPES, "cpu", (n, elems, 6))

    cpu = min(os.sched_getaffinity(0))
    saved = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    busy = None
    try:
        canary = Canary(CpuDevice(threads=1))
        base = min(baseline_s(canary) for _ in range(2))           # the quieter of two baselines
        calls, marks = [], []
        spin = f"import os, sys; os.sched_setaffinity(0, {{{cpu}}}); print('spinning', flush=True)\nwhile True: pass"

        def run():
            nonlocal busy
            calls.append(1)
            if len(calls) == 3:                                     # from the third repeat on, a neighbour spins
                busy = subprocess.Popen([sys.executable, "-c", spin], stdout=subprocess.PIPE, text=True)
                busy.stdout.readline()                              # it is pinned and spinning now
                marks.append(len(canary.series))
            return Trajectory([0.01], [0])

        log = collect(run, StopRule(4, 6, 100.0), canary, base_s=base, max_retries=3)
    finally:
        if busy is not None:
            busy.kill()
            busy.wait()
        os.sched_setaffinity(0, saved)
    assert busy is not None and len(log.disturbed) >= 4
    during = sorted(c["time_s"] for c in canary.series[marks[0]:])
    assert during[len(during) // 2] > 1.05 * base                   # the canary is slower while the neighbour spins
    assert sum(log.disturbed[2:]) * 2 >= len(log.disturbed[2:])      # and most repeats from then on are marked


def test_sweep_repeat_policy():
    import json
    from bench.sweep import parse_sweep
    from theory.errors import TheoryError
    base = {"name": "t", "grids": [{"axes": {"hidden_size": [64]}}], "defaults": {"head_dim": 16}}
    s = parse_sweep({**base, "min_repeats": 4, "max_repeats": 9, "max_point_s": 2}, "", "t")
    assert (s.min_repeats, s.max_repeats, s.max_point_s, s.max_retries) == (4, 9, 2.0, None)
    s = parse_sweep({**base, "repeats": 3}, "", "t")                  # older files: exactly three, no retries
    assert (s.min_repeats, s.max_repeats, s.max_retries, s.repeats) == (3, 3, 0, 3)
    for bad in ({"repeats": 3, "min_repeats": 2}, {"min_repeats": 5, "max_repeats": 4}, {"max_point_s": 0},
                {"min_repeat": 3}):
        with pytest.raises(TheoryError):
            parse_sweep({**base, **bad}, json.dumps(bad), "t")


def test_canary_threshold_follows_its_own_scatter_at_the_start():
    """A canary that scatters ±20% when quiet must not call every repeat disturbed (a 5% threshold did, in the
    committed run of 11:44): the threshold is its start-of-run scatter, never below 5%."""
    from bench.timing.canary import baseline, slow

    class Scripted:
        def __init__(self, xs):
            self.xs = iter(xs)

        def read(self, where=""):
            return next(self.xs)

    noisy = baseline(Scripted([1.0, 1.2, 0.95, 1.0, 1.1, 1.0, 0.9]))
    assert noisy.time_s == 1.0 and noisy.slow_rel == pytest.approx(0.2)
    assert not slow(1.15, noisy.time_s, noisy.slow_rel) and slow(2.0, noisy.time_s, noisy.slow_rel)
    quiet = baseline(Scripted([1.0, 1.01, 0.99, 1.0, 1.0, 1.02, 1.0]))
    assert quiet.slow_rel == pytest.approx(0.05)                   # SLOW_REL is the floor
    assert slow(1.06, quiet.time_s, quiet.slow_rel)


@pytest.mark.parametrize("cold_s, warms_up", [(1.05, False), (0.0, True)])
def test_a_long_cold_trajectory_stands_for_the_warmup(monkeypatch, cold_s, warms_up):
    """512-token points used to spend three 5.7 s trajectories warming up; one that long is warm already."""
    import time as _time
    from bench.timing import repeats, trajectory
    calls = []

    def fake(*a, **k):
        calls.append(1)
        if len(calls) == 1:
            _time.sleep(cold_s)
        return Trajectory([0.001, 0.001], [0, 0])

    class Dev:
        def empty_cache(self):
            pass

        def sampling(self):
            import contextlib
            return contextlib.nullcontext()

    monkeypatch.setattr(trajectory, "run_trajectory", fake)
    m = repeats.measure(None, Dev(), None, 2, "dynamic", None, 2, 0.01)
    assert (m.warmup_trajectories >= 1) == warms_up
