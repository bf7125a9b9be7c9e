"""Yardsticks: the same kernels and a dispatch probe sampled in every paired round of every point
(bench/kernels/yardstick.py), read back as each point's speed (analysis/yardstick.py) and used by leave-one-out's
drift-scaled figure in place of the canary (analysis/loo.py drift_factors)."""
import pandas as pd
import pytest

from analysis.loo import CANARY_AS, YARDSTICKS_AS, drift_factors, leave_one_out, run_loo
from analysis.load import load_run
from analysis.yardstick import point_speeds, speeds_of
from bench.devices.cpu import CpuDevice
from bench.kernels.rounds import DISPATCH, round_rows
from bench.kernels.yardstick import DispatchProbe, Yardsticks, yardstick_kernels


def _rounds(readings: dict[str, dict[str, list[float]]], unused: float | None = None) -> pd.DataFrame:
    """kernel_rounds.csv rows: point → yardstick → samples (all used), plus one unused huge sample per series."""
    rows = []
    for pid, by in readings.items():
        for name, xs in by.items():
            rows += [{"point_id": pid, "kind": "yardstick", "name": name, "round": i, "used": 1, "sample_s": x}
                     for i, x in enumerate(xs)]
            if unused is not None:
                rows.append({"point_id": pid, "kind": "yardstick", "name": name, "round": len(xs), "used": 0,
                             "sample_s": unused})
    return pd.DataFrame(rows)


def test_a_point_whose_yardsticks_read_slower_gets_that_ratio_and_unused_rounds_are_ignored():
    same = {"lin": [1.0, 1.0, 1.1], "norm": [2.0, 2.0, 2.0], DISPATCH: [3.0, 3.0, 3.0]}
    slow = {"lin": [2.0, 2.0, 2.0], "norm": [4.5, 4.5, 4.5], DISPATCH: [6.0, 6.0, 6.0]}
    speeds = speeds_of(_rounds({"a": same, "b": same, "c": slow}, unused=100.0))
    assert speeds["a"] == speeds["b"] and speeds["a"]["kernels"] == pytest.approx(1.0)
    assert speeds["c"]["kernels"] == pytest.approx((2.0 * 2.25) ** 0.5)       # geometric mean over kernel yardsticks
    assert speeds["c"]["dispatch"] == pytest.approx(2.0)


def test_a_run_without_yardsticks_has_no_speeds(tmp_path):
    assert point_speeds(tmp_path) is None
    assert speeds_of(pd.DataFrame({"point_id": ["a"], "kind": ["kernel"], "name": ["k"], "round": [0], "used": [1],
                                   "sample_s": [1.0]})) is None


def test_drift_factors_take_the_yardsticks_and_fall_back_to_the_canary():
    speeds = {"p": {"kernels": 1.2, "dispatch": 2.0}, "q": {"kernels": 0.6, "dispatch": 1.0}, "r": None}
    canary = {"p": 1.1, "q": 1.0, "r": 0.55}
    assert drift_factors("p", "q", speeds, canary) == pytest.approx((2.0, 2.0, True))
    assert drift_factors("p", "r", speeds, canary)[:2] == pytest.approx((2.0, 2.0))        # canary: 1.1 / 0.55
    assert drift_factors("p", "r", speeds, canary)[2] is False
    assert drift_factors("p", "q", None, {"p": None, "q": 1.0}) == (1.0, 1.0, False)


def test_the_yardsticks_are_the_same_at_every_point_and_sampled_once_per_round():
    dev = CpuDevice(threads=1)
    a, b = Yardsticks(dev, "fp32", 8 * 2**20), Yardsticks(dev, "fp32", 8 * 2**20)
    assert list(a.samplers) == list(b.samplers) and DISPATCH in a.samplers
    assert len(a.samplers) == len(yardstick_kernels("fp32")) + 1
    a.round()
    a.round()
    assert all(len(xs) == 2 and all(x > 0 for x in xs) for xs in a.samples.values())
    lin = next(s for name, s in a.samplers.items() if name.startswith("q_proj"))
    assert lin.copies > 1                                    # the linear yardstick streams its weights from DRAM


def test_the_dispatch_probe_times_per_call_on_the_host_clock():
    now = [0.0]

    def clock():
        now[0] += 0.5
        return now[0]

    probe = DispatchProbe(CpuDevice(threads=1), clock=clock)
    from bench.kernels.yardstick import DISPATCH_CALLS
    assert probe.sample() == pytest.approx(0.5 / DISPATCH_CALLS)


def test_round_rows_keep_the_yardsticks_with_their_used_flag():
    rows = round_rows("pid", {"k": [1.0, 2.0]}, [[0.1, 0.2], [0.1, 0.2]], [1], {DISPATCH: [3.0, 4.0]})
    y = [r for r in rows if r["kind"] == "yardstick"]
    assert [(r["name"], r["round"], r["used"], r["sample_s"]) for r in y] == [(DISPATCH, 0, 0, "3"),
                                                                              (DISPATCH, 1, 1, "4")]


def test_the_tiny_run_keeps_yardsticks_and_leave_one_out_scales_by_them(tiny_run):
    rounds = pd.read_csv(tiny_run / "kernel_rounds.csv", dtype={"point_id": str})
    y = rounds[rounds["kind"] == "yardstick"]
    m = pd.read_csv(tiny_run / "measurements.csv", dtype={"point_id": str})
    eager = set(m[m["execution"] == "eager"]["point_id"]) if "execution" in m else set(m["point_id"])
    assert set(y["point_id"]) == eager and set(y["name"]) >= {DISPATCH}
    speeds = point_speeds(tiny_run)
    assert set(speeds) == eager and all(s["kernels"] > 0 and s["dispatch"] > 0 for s in speeds.values())
    run = load_run(tiny_run)
    scaled = leave_one_out(run, drift_scaled=True, speeds=speeds)
    assert scaled is not None and scaled["kernels_as"] == YARDSTICKS_AS
    assert leave_one_out(run, drift_scaled=True)["kernels_as"] == CANARY_AS
    assert leave_one_out(run)["kernels_as"] == "measured"
    loo = run_loo(run)
    assert set(loo) == {"measured", "drift_scaled", "yardstick_scaled"}


def test_analysis_reads_the_names_bench_writes():
    import analysis.yardstick as a
    import bench.kernels.rounds as b
    assert (a.ROUNDS_FILE, a.DISPATCH) == (b.ROUNDS_FILE, b.DISPATCH)


def test_leave_one_out_scales_other_points_kernels_and_framework_by_their_own_yardstick_ratios(tiny_run,
                                                                                               monkeypatch):
    import analysis.loo as loo
    run = load_run(tiny_run)
    pids = sorted(point_speeds(tiny_run))
    held = pids[0]
    speeds = {p: {"kernels": 1.0, "dispatch": 1.0} for p in pids}
    speeds[held] = {"kernels": 2.0, "dispatch": 3.0}              # the box ran slower at the held-out point
    calls = []
    real = loo._scaled
    monkeypatch.setattr(loo, "_scaled", lambda passes, k, f: calls.append((k, f)) or real(passes, k, f))
    loo.leave_one_out(run, True, speeds=speeds)
    assert calls and (2.0, 3.0) in calls and (0.5, 1 / 3) in calls    # to the held-out point's speed, and back
    assert all(c in {(1.0, 1.0), (2.0, 3.0), (0.5, 1 / 3)} for c in calls)
