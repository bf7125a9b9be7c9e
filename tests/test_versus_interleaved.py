"""`python -m bench.kernels.versus --calibrate-from`: the calibration of other models timed around the model
(A B A ... A), pooled (theory/calibration/pool.py), and the box's drift over the try said in the units a user reads."""
import json

import pytest

from bench.kernels.versus import drift_summary, main as versus_main
from theory.calibration.pool import pool
from theory.cliutil import run_main
from theory.errors import TheoryError

CFG = {"num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16, "vocab_size": 256,
       "max_position_embeddings": 512}


def _cal(kernel_s: float, framework_s: float, utc: str) -> dict:
    op = lambda t: {"count": 2, "kernel_s": t, "ci_low_s": 0.9 * t, "ci_high_s": 1.1 * t, "work": 1.0}
    passes = [{"phase": ph, "batch": 1, "prompt_len": 8, "context_len": ctx, "max_cache_len": None,
               "model": {"name": "m"}, "framework_s": framework_s, "ops": {"q_proj": op(kernel_s), "lm_head": op(2 * kernel_s)}}
              for ph, ctx in (("prefill", 8), ("decode", 8))]
    return {"format": 2, "utc_time": utc, "wall_s": 1.0, "passes": passes}


def test_pooling_takes_each_ops_median_and_spans_the_calibrations_intervals():
    got = pool([_cal(1.0, 0.1, "a"), _cal(3.0, 0.3, "b"), _cal(2.0, 0.5, "c")])
    q = got["passes"][1]["ops"]["q_proj"]
    assert q["kernel_s"] == 2.0 and q["ci_low_s"] == pytest.approx(0.9) and q["ci_high_s"] == pytest.approx(3.3)
    assert got["passes"][1]["ops"]["lm_head"]["kernel_s"] == 4.0
    assert got["passes"][0]["framework_s"] == 0.3 and got["pooled_from"] == ["a", "b", "c"] and got["wall_s"] == 3.0


def test_pooling_refuses_calibrations_of_other_passes_or_ops():
    other = _cal(1.0, 0.1, "b")
    other["passes"][1]["context_len"] = 99
    with pytest.raises(TheoryError, match="same passes"):
        pool([_cal(1.0, 0.1, "a"), other])
    fewer = _cal(1.0, 0.1, "b")
    del fewer["passes"][0]["ops"]["lm_head"]
    with pytest.raises(TheoryError, match="differ in the ops"):
        pool([_cal(1.0, 0.1, "a"), fewer])


def test_drift_bound_holds_only_when_every_calibration_lands_within_five_percent_of_the_pooled_one():
    pred = lambda tpot, ttft: {"time_per_output_token_s": tpot, "time_to_first_token_s": ttft}
    inside = drift_summary(pred(1.0, 10.0), [pred(0.96, 10.4), pred(1.0, 10.0), pred(1.04, 9.7)])
    assert inside["within_drift_bound"] and inside["box_moved_first_to_last_tpot"] == pytest.approx(1.04 / 0.96 - 1)
    outside = drift_summary(pred(1.0, 10.0), [pred(1.0, 10.0), pred(1.0, 10.6)])      # TTFT moved 6%
    assert not outside["within_drift_bound"]


@pytest.fixture(scope="module")
def configs(tmp_path_factory):
    d = tmp_path_factory.mktemp("interleaved")
    paths = {}
    for name, hidden, layers in (("a", 64, 2), ("b", 96, 1), ("target", 80, 3)):
        paths[name] = d / f"{name}.json"
        paths[name].write_text(json.dumps({**CFG, "hidden_size": hidden, "num_hidden_layers": layers,
                                           "intermediate_size": 2 * hidden}))
    return d, paths


def test_interleaved_try_times_a_calibration_around_every_trajectory_and_keeps_every_file(configs, monkeypatch,
                                                                                          capsys):
    import bench.kernels.calibrate as calibrate
    import bench.kernels.interleave as interleave
    d, paths = configs
    monkeypatch.setattr(calibrate, "llc_sweep", lambda *a, **k: None)       # the effective-LLC sweep: 2 s each
    order = []
    real_measure, real_run = interleave.measure, interleave.run_trajectory
    monkeypatch.setattr(interleave, "measure", lambda *a, **k: order.append("A") or real_measure(*a, **k))
    monkeypatch.setattr(interleave, "run_trajectory", lambda *a, **k: order.append("B") or real_run(*a, **k))
    out = d / "try-1"
    assert run_main(versus_main, ["--calibrate-from", str(paths["a"]), str(paths["b"]), "--model",
                                  str(paths["target"]), "--prompt-len", "8", "--generated", "3", "--repeats", "2",
                                  "--device", "cpu", "--out-dir", str(out)], errors=(ValueError,)) == 0
    assert order == ["B", "A", "B", "A", "B", "A"]                              # warm-up, then A B A B A
    got = json.loads((out / "versus.json").read_text())
    assert sorted(p.name for p in out.iterdir()) == ["calibration-1.json", "calibration-2.json", "calibration-3.json",
                                                     "calibration-pooled.json", "versus.json"]
    assert got["calibrations"] == 3 and got["calibrated_from"] == ["a", "b"]
    assert len(got["calibrations_tpot_over_pooled"]) == 3 and isinstance(got["within_drift_bound"], bool)
    assert got["tpot_error"] == pytest.approx(got["measured_tpot_s"] / got["predicted_tpot_s"] - 1)
    pooled = json.loads((out / "calibration-pooled.json").read_text())
    assert {p["model"]["name"] for p in pooled["passes"]} == {"a", "b"}
    err = capsys.readouterr().err
    assert "interleaved: 3 calibrations around 2 trajectories" in err and "drift bound" in err


@pytest.mark.parametrize("extra, needle", [
    (["--calibrate-from", "{target}"], "is one of --calibrate-from"),
    (["--calibration", "x.json", "--out-dir", "{d}"], "--out-dir goes with --calibrate-from"),
    (["--calibrate-from", "{a}", "--out-dir", "{d}"], "is not empty"),
])
def test_interleaved_bad_input_is_one_line(configs, capsys, extra, needle):
    d, paths = configs
    fill = {"target": str(paths["target"]), "a": str(paths["a"]), "d": str(d)}
    argv = [x.format(**fill) for x in extra] + ["--model", str(paths["target"]), "--prompt-len", "8"]
    assert run_main(versus_main, argv, errors=(ValueError,)) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and needle in err
