"""`python -m bench.kernels.versus --calibrate-from`: the calibration of other models timed around the model
in kernel rounds (A B A ... A), the prediction from every round, and the box's drift over the try said in the
units a user reads."""
import json
import statistics

import pytest

from bench.kernels.scoring import drift_summary, measured, per_trajectory
from bench.kernels.versus import main as versus_main
from theory.cliutil import run_main

CFG = {"num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16, "vocab_size": 256,
       "max_position_embeddings": 512}


def test_drift_is_the_last_gaps_prediction_against_the_first_gaps_in_tpot_and_ttft():
    pred = lambda tpot, ttft: {"time_per_output_token_s": tpot, "time_to_first_token_s": ttft}
    inside = drift_summary(pred(1.0, 10.0), pred(0.98, 10.1), pred(1.01, 10.3))
    assert inside["within_drift_bound"] and inside["box_moved_first_to_last_tpot"] == pytest.approx(1.01 / 0.98 - 1)
    assert inside["first_gap_tpot_over_pooled"] == pytest.approx(-0.02)
    outside = drift_summary(pred(1.0, 10.0), pred(1.0, 10.0), pred(1.0, 10.6))      # TTFT moved 6%
    assert not outside["within_drift_bound"] and outside["box_moved_first_to_last_ttft"] == pytest.approx(0.06)


def test_each_trajectory_is_scored_against_the_rounds_around_it_with_its_own_drift():
    pred = lambda tpot, ttft: {"time_per_output_token_s": tpot, "time_to_first_token_s": ttft}
    gaps = [pred(1.0, 10.0), pred(1.02, 10.1), pred(1.5, 10.1)]              # the box held, then slowed 47%
    around = [pred(1.01, 10.05), pred(1.25, 10.1)]
    runs = [[11.0, 1.1, 1.1, 1.1], [10.1, 1.25, 1.25, 1.25]]                 # prefill, then decode steps
    t1, t2 = per_trajectory(runs, gaps, around)
    assert t1["within_drift_bound"] and t1["box_moved_tpot"] == pytest.approx(0.02)
    assert t1["tpot_error"] == pytest.approx(1.1 / 1.01 - 1) and t1["ttft_error"] == pytest.approx(11.0 / 10.05 - 1)
    assert not t2["within_drift_bound"] and t2["box_moved_tpot"] == pytest.approx(1.5 / 1.02 - 1)
    assert t2["tpot_error"] == pytest.approx(0.0)


def test_tpot_is_the_mean_over_steps_of_each_steps_median_as_bench_run_reads_a_step():
    # three trajectories, prefill then three decode steps; one slow burst covers two steps of trajectory 2 and
    # one of trajectory 3 (not the same step): no step's median moves
    runs = [[1.0, 0.10, 0.10, 0.10], [1.1, 0.14, 0.14, 0.10], [0.9, 0.10, 0.10, 0.14]]
    m = measured(runs)
    assert m["measured_tpot_s"] == pytest.approx(0.10)
    assert m["measured_ttft_s"] == pytest.approx(1.0) and m["measured_ttft_range_s"] == [0.9, 1.1]
    # the trajectories' own means, kept beside it: their median reads the burst
    assert m["measured_tpot_trajectory_median_s"] == pytest.approx(statistics.fmean([0.10, 0.10, 0.14]))
    assert m["measured_tpot_range_s"] == pytest.approx([0.10, statistics.fmean([0.14, 0.14, 0.10])])
    assert m["measured_tpot_step_median_s"] == pytest.approx([0.10, 0.10, 0.10])
    with pytest.raises(ValueError, match="same passes"):
        measured([[1.0, 0.1, 0.1], [1.0, 0.1]])


@pytest.fixture(scope="module")
def configs(tmp_path_factory):
    d = tmp_path_factory.mktemp("interleaved")
    paths = {}
    for name, hidden, layers in (("a", 64, 2), ("b", 96, 1), ("target", 80, 3)):
        paths[name] = d / f"{name}.json"
        paths[name].write_text(json.dumps({**CFG, "hidden_size": hidden, "num_hidden_layers": layers,
                                           "intermediate_size": 2 * hidden}))
    return d, paths


def test_interleaved_try_times_kernel_rounds_around_every_trajectory_and_keeps_every_file(configs, monkeypatch,
                                                                                        capsys):
    import bench.kernels.interleave as interleave
    d, paths = configs
    monkeypatch.setattr(interleave, "llc_sweep", lambda *a, **k: None)      # the effective-LLC sweep: 2 s
    order = []
    real_round, real_run = interleave.CalibrationRounds.round, interleave.run_trajectory
    monkeypatch.setattr(interleave.CalibrationRounds, "round", lambda self: order.append("A") or real_round(self))
    monkeypatch.setattr(interleave, "run_trajectory", lambda *a, **k: order.append("B") or real_run(*a, **k))
    out = d / "try-1"
    assert run_main(versus_main, ["--calibrate-from", str(paths["a"]), str(paths["b"]), "--model",
                                  str(paths["target"]), "--prompt-len", "8", "--generated", "3", "--repeats", "2",
                                  "--rounds", "2", "--device", "cpu", "--out-dir", str(out), "--settle", "0"],
                    errors=(ValueError,)) == 0
    assert order == ["B"] + ["A", "A", "B"] * 2 + ["A", "A"]                 # warm-up, then A B A B A
    got = json.loads((out / "versus.json").read_text())
    assert sorted(p.name for p in out.iterdir()) == ["calibration-around-1.json", "calibration-around-2.json",
                                                     "calibration-first.json", "calibration-last.json",
                                                     "calibration-pooled.json", "versus.json"]
    assert [t["trajectory"] for t in got["trajectories"]] == [1, 2]
    assert got["trajectories_within_drift_bound"] == sum(t["within_drift_bound"] for t in got["trajectories"])
    around = json.loads((out / "calibration-around-1.json").read_text())
    assert around["rounds"] == 4                                             # the two gaps around trajectory 1
    assert got["gaps"] == 3 and got["rounds_per_gap"] == 2 and got["calibrated_from"] == ["a", "b"]
    assert isinstance(got["within_drift_bound"], bool)
    assert got["tpot_error"] == pytest.approx(got["measured_tpot_s"] / got["predicted_tpot_s"] - 1)
    # every timed pass is kept, so any statistic of them can be read again from the file
    assert len(got["runs_s"]) == 2 and all(len(r) == 3 for r in got["runs_s"])
    assert got["measured_tpot_s"] == pytest.approx(measured(got["runs_s"])["measured_tpot_s"])
    pooled = json.loads((out / "calibration-pooled.json").read_text())
    first = json.loads((out / "calibration-first.json").read_text())
    assert {p["model"]["name"] for p in pooled["passes"]} == {"a", "b"}
    assert pooled["rounds"] == 6 and first["rounds"] == 2
    assert 0 < first["wall_s"] < pooled["wall_s"] and first["utc_time"] == pooled["utc_time"]   # the rounds' own time
    err = capsys.readouterr().err
    assert "interleaved: 2 kernel rounds before the model and after each of 2 trajectories" in err
    assert "drift bound" in err and "trajectory 2 against the rounds around it" in err


def test_settling_trajectories_run_after_each_gap_and_are_kept_but_not_scored(configs, monkeypatch, capsys):
    import bench.kernels.interleave as interleave
    d, paths = configs
    monkeypatch.setattr(interleave, "llc_sweep", lambda *a, **k: None)
    order, real_round, real_run = [], interleave.CalibrationRounds.round, interleave.run_trajectory
    calls = iter(range(100))

    class Slow:                  # every trajectory after a gap's rounds reads 1.5x the next one
        def __init__(self, times_s):
            self.times_s = times_s

    def run(*a, **k):
        order.append("B")
        real = real_run(*a, **k)
        n = next(calls)
        return Slow([0.2, 0.03, 0.03] if n > 0 and n % 2 == 1 else [0.1, 0.02, 0.02])

    monkeypatch.setattr(interleave.CalibrationRounds, "round", lambda self: order.append("A") or real_round(self))
    monkeypatch.setattr(interleave, "run_trajectory", run)
    out = d / "try-settle"
    assert run_main(versus_main, ["--calibrate-from", str(paths["a"]), str(paths["b"]), "--model",
                                  str(paths["target"]), "--prompt-len", "8", "--generated", "3", "--repeats", "2",
                                  "--rounds", "1", "--device", "cpu", "--out-dir", str(out)], errors=(ValueError,)) == 0
    assert order == ["B"] + ["A", "B", "B"] * 2 + ["A"]                      # warm-up, then A (settle, timed) ... A
    got = json.loads((out / "versus.json").read_text())
    assert got["measured_tpot_s"] == pytest.approx(0.02) and got["measured_ttft_s"] == pytest.approx(0.1)
    assert got["settle"]["per_gap"] == 1 and len(got["settle"]["gaps"]) == 2
    assert got["settle_runs_s"] == [[[0.2, 0.03, 0.03]], [[0.2, 0.03, 0.03]]]
    assert got["settle"]["median_tpot_over_timed"] == pytest.approx(1.5)
    assert got["settle"]["median_ttft_over_timed"] == pytest.approx(2.0)
    assert "settling trajectories (not scored)" in capsys.readouterr().err


def test_the_framework_is_sampled_in_the_rounds_from_the_tiny_models_passes(configs, monkeypatch):
    import bench.kernels.interleave as interleave
    d, paths = configs
    monkeypatch.setattr(interleave, "llc_sweep", lambda *a, **k: None)
    # every tiny pass reads 0.1 s in the first gap's two rounds and 0.6 s after: only the rounds can say so
    monkeypatch.setattr(interleave.TinyFramework, "trajectory",
                        lambda self: [0.1 if len(self.times) < 2 else 0.6] * self.p.generated)
    out = d / "try-framework"
    assert run_main(versus_main, ["--calibrate-from", str(paths["a"]), str(paths["b"]), "--model",
                                  str(paths["target"]), "--prompt-len", "8", "--generated", "3", "--repeats", "2",
                                  "--rounds", "2", "--device", "cpu", "--out-dir", str(out), "--settle", "0",
                                  "--own-kernels"], errors=(ValueError,)) == 0
    read = lambda name: json.loads((out / name).read_text())["passes"]
    first, last, own = read("calibration-first.json"), read("calibration-last.json"), read("calibration-own.json")
    for a, b in zip(first, last):                  # the same tiny kernels, sampled in other rounds: microseconds
        assert b["framework_s"] - a["framework_s"] == pytest.approx(0.5, abs=0.01)
    assert all(p["framework_s"] == pytest.approx(0.6, abs=0.01) for p in own)     # median over six rounds: 0.6 s


@pytest.mark.parametrize("extra, needle", [
    (["--calibrate-from", "{target}"], "has the shape of --calibrate-from's target"),
    (["--calibrate-from", "{copy}"], "has the shape of --calibrate-from's copy"),   # another name, one model
    (["--calibration", "x.json", "--out-dir", "{d}"], "--out-dir goes with --calibrate-from"),
    (["--calibrate-from", "{a}", "--out-dir", "{d}"], "is not empty"),
    (["--calibrate-from", "{a}", "--rounds", "0"], "--rounds must be at least 1"),
    (["--calibrate-from", "{a}", "--settle", "-1"], "--settle must be 0 or more"),
])
def test_interleaved_bad_input_is_one_line(configs, capsys, extra, needle):
    d, paths = configs
    copy = d / "copy.json"
    copy.write_text(paths["target"].read_text())
    fill = {"target": str(paths["target"]), "a": str(paths["a"]), "d": str(d), "copy": str(copy)}
    argv = [x.format(**fill) for x in extra] + ["--model", str(paths["target"]), "--prompt-len", "8"]
    assert run_main(versus_main, argv, errors=(ValueError,)) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and needle in err


def test_a_calibration_that_would_leave_no_room_for_the_target_is_refused_in_one_line(configs, monkeypatch, capsys):
    import bench.kernels.interleave as interleave
    from bench.devices.cpu import CpuDevice
    d, paths = configs
    monkeypatch.setattr(interleave, "llc_sweep", lambda *a, **k: None)
    monkeypatch.setattr(CpuDevice, "free_bytes", lambda self: 1 * interleave.GIB)    # less than the 2 GiB floor
    assert run_main(versus_main, ["--calibrate-from", str(paths["a"]), "--model", str(paths["target"]),
                                  "--prompt-len", "8", "--generated", "3", "--device", "cpu"],
                    errors=(ValueError,)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len([l for l in err if l.startswith("error:")]) == 1 and "calibrate from smaller models" in err[-1]


def test_own_kernels_are_sampled_in_the_same_rounds_kept_apart_and_split_the_error(configs, monkeypatch, capsys):
    import bench.kernels.interleave as interleave
    from theory.calibration import request
    from theory.hfconfig import load_model
    d, paths = configs
    monkeypatch.setattr(interleave, "llc_sweep", lambda *a, **k: None)
    out = d / "try-own"
    assert run_main(versus_main, ["--calibrate-from", str(paths["a"]), str(paths["b"]), "--model",
                                  str(paths["target"]), "--prompt-len", "8", "--generated", "3", "--repeats", "1",
                                  "--rounds", "2", "--device", "cpu", "--out-dir", str(out), "--settle", "0",
                                  "--own-kernels"], errors=(ValueError,)) == 0
    got = json.loads((out / "versus.json").read_text())
    pooled = json.loads((out / "calibration-pooled.json").read_text())
    own = json.loads((out / "calibration-own.json").read_text())
    assert {p["model"]["name"] for p in pooled["passes"]} == {"a", "b"}        # the witness is not an input
    assert {p["model"]["name"] for p in own["passes"]} == {"target"} and own["rounds"] == pooled["rounds"] == 4
    spec = load_model(str(paths["target"]))
    assert request(pooled, spec, 1, 8, 3)["time_per_output_token_s"] == pytest.approx(got["predicted_tpot_s"])
    assert request(own, spec, 1, 8, 3)["own_shapes"] == {op: True for op in got["own_shapes"]}
    for phase, measured in (("decode", got["measured_tpot_s"]), ("prefill", got["measured_ttft_s"])):
        s = got["own_kernels"][phase]
        assert 1 + s["error"] == pytest.approx((1 + s["composition_error"]) * (1 + s["interpolation_error"]))
        assert s["error"] == pytest.approx(measured / s["predicted_s"] - 1)
        assert sum(s["op_share"].values()) + s["framework_share"] + s["residual_share"] == \
            pytest.approx(s["interpolation_error"])
    assert got["own_kernels"]["decode"]["predicted_s"] == pytest.approx(got["predicted_tpot_s"])
    err = capsys.readouterr().err
    assert "TPOT" in err and "composition" in err and "× interpolation" in err and "largest op shares" in err


@pytest.mark.parametrize("flag", ["--own-kernels", "--full-passes"])
def test_own_kernels_or_full_passes_without_calibrate_from_is_one_line(configs, capsys, flag):
    d, paths = configs
    assert run_main(versus_main, ["--calibration", "x.json", flag, "--model", str(paths["target"]),
                                  "--prompt-len", "8"], errors=(ValueError,)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{flag} goes with --calibrate-from" in err[0]


def test_full_passes_time_the_calibration_models_after_each_gap_and_add_their_residual(configs, monkeypatch, capsys):
    import bench.kernels.interleave as interleave
    from theory.calibration import request
    from theory.calibration.predict import without_residuals
    from theory.hfconfig import load_model
    d, paths = configs
    monkeypatch.setattr(interleave, "llc_sweep", lambda *a, **k: None)
    order, real_round, real_run = [], interleave.CalibrationRounds.round, interleave.run_trajectory
    monkeypatch.setattr(interleave.CalibrationRounds, "round", lambda self: order.append("A") or real_round(self))
    calls = iter(range(1000))

    class Known:                 # pass i of the n-th trajectory reads n + i/10 s (distinct: the index is checked)
        def __init__(self, n, passes):
            self.times_s = [n + i / 10 for i in range(passes)]

    def run(model, *a, **k):
        order.append(model.config.hidden_size)
        real = real_run(model, *a, **k)
        return Known(next(calls), len(real.times_s)) if model.config.hidden_size != 80 else real

    monkeypatch.setattr(interleave, "run_trajectory", run)
    out = d / "try-full"
    assert run_main(versus_main, ["--calibrate-from", str(paths["a"]), str(paths["b"]), "--model",
                                  str(paths["target"]), "--prompt-len", "8", "--generated", "3", "--repeats", "1",
                                  "--rounds", "1", "--device", "cpu", "--out-dir", str(out), "--settle", "0",
                                  "--full-passes"], errors=(ValueError,)) == 0
    # a (hidden 64) and b (96) built and warmed, the target (80) warmed; after every gap's rounds, the last one's
    # too, one trajectory of each calibration model before the target's
    assert order == [64, 96, 80, "A", 64, 96, 80, "A", 64, 96]
    got = json.loads((out / "versus.json").read_text())
    pooled = json.loads((out / "calibration-pooled.json").read_text())
    # full trajectories numbered in order: a, b warm-ups 0, 1; then per gap a, b: 2, 3 and 4, 5
    first_of = {"a": 2, "b": 3}
    for p in pooled["passes"]:
        kernels = sum(o["count"] * o["kernel_s"] for o in p["ops"].values())
        step = 0 if p["phase"] == "prefill" else 1 + p["context_len"] - p["prompt_len"]
        n0 = first_of[p["model"]["name"]]
        assert p["full_passes"] == 2
        assert p["full_pass_s"] == pytest.approx(statistics.median([n0 + step / 10, n0 + 2 + step / 10]))
        assert p["residual_s"] == pytest.approx(p["full_pass_s"] - kernels - p["framework_s"])
    assert {(p["phase"], p["context_len"]) for p in pooled["passes"]} == {("prefill", 0), ("decode", 8), ("decode", 9)}
    spec = load_model(str(paths["target"]))
    with_res = request(pooled, spec, 1, 8, 3)
    without = request(without_residuals(pooled), spec, 1, 8, 3)
    assert with_res["time_per_output_token_s"] == pytest.approx(got["predicted_tpot_s"])
    assert with_res["time_per_output_token_s"] - without["time_per_output_token_s"] == \
        pytest.approx(got["residuals"]["added_to_tpot_s"])
    assert without["residual_tpot_s"] == 0.0 and got["full_passes"] is True
    # the box's drift is read from kernels and framework alone, not from one full trajectory's residual
    gap = lambda name: request(without_residuals(json.loads((out / f"calibration-{name}.json").read_text())), spec,
                               1, 8, 3)["time_per_output_token_s"]
    assert got["box_moved_first_to_last_tpot"] == pytest.approx(gap("last") / gap("first") - 1)
    assert "full passes of the calibration models beyond their kernels and framework" in capsys.readouterr().err
