"""Interpolating a kernel calibration over shapes it lacks, on synthetic calibrations (no torch, nothing timed):
exact at the calibrated points, monotone between them, extrapolation flagged, format 1 still read."""
import math

import pytest

from theory.calibration import FORMAT, FORMAT_V1, predict_pass, request, upgrade
from theory.calibration.interp import as_run_workload, interpolate, op_work
from theory.errors import TheoryError
from theory.hfconfig import from_hf_config
from theory.ops import count_ops

MODEL = from_hf_config({"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
                        "head_dim": 16, "intermediate_size": 176, "vocab_size": 256, "max_position_embeddings": 512})
BIGGER = from_hf_config({"hidden_size": 96, "num_hidden_layers": 3, "num_attention_heads": 6, "num_key_value_heads": 2,
                         "head_dim": 16, "intermediate_size": 256, "vocab_size": 256, "max_position_embeddings": 512})
FRAMEWORK_PER_OP_S = 2e-6


def fake_kernel_s(work: float) -> float:
    """A kernel with a fixed cost and a rate: concave in log-log, like the real ones."""
    return 3e-6 + work * 1e-10


def synthetic(workloads=((1, 8), (4, 8)), generated=4) -> dict:
    passes = []
    for batch, prompt in workloads:
        for phase, ctx in (("prefill", 0), ("decode", prompt), ("decode", prompt + generated - 2)):
            w = as_run_workload(phase, batch, prompt if phase == "prefill" else 1, ctx, "fp32", "sdpa", "dynamic",
                                None, True)
            ops = {}
            for r in count_ops(MODEL, w):
                work, unit = op_work(r)
                t = fake_kernel_s(work)
                ops[r.name] = {"count": r.count, "kernel_s": t, "ci_low_s": 0.9 * t, "ci_high_s": 1.1 * t,
                               "work": work, "work_unit": unit}
            n = sum(o["count"] for o in ops.values())
            passes.append({"phase": phase, "batch": batch, "prompt_len": prompt, "context_len": ctx,
                           "framework_s": FRAMEWORK_PER_OP_S * n, "op_instances": n, "ops": ops})
    return {"format": FORMAT, "dtype": "fp32", "attention": "sdpa", "cache": "dynamic", "cache_state": "llc",
            "model": {"name": "m"}, "passes": passes,
            "workloads": [{"batch": b, "prompt_len": t, "generated": generated} for b, t in workloads]}


def test_interpolate_is_exact_at_points_monotone_between_and_flags_beyond():
    pts = [(10.0, 1.0), (100.0, 3.0), (1000.0, 20.0)]
    for w, t in pts:
        assert interpolate(pts, w) == (t, "calibrated")
    grid = [10 * 1.05 ** i for i in range(1, 94)]
    times = [interpolate(pts, w) for w in grid]
    assert all(s == "interpolated" for _, s in times)
    assert all(a[0] <= b[0] for a, b in zip(times, times[1:]))
    # piecewise linear in log-log: the geometric middle of a segment gets the geometric middle of its times
    assert interpolate(pts, math.sqrt(10 * 100))[0] == pytest.approx(math.sqrt(1 * 3))
    assert interpolate(pts, 4000.0) == (pytest.approx(80.0), "extrapolated")      # the largest's rate, 20/1000
    assert interpolate(pts, 5.0) == (pytest.approx(0.5), "extrapolated")          # the smallest's rate
    assert interpolate([(10.0, 1.0), (10.0, 3.0)], 10.0) == (2.0, "calibrated")    # the same size twice: the mean


def test_calibrated_workloads_are_reproduced_exactly():
    cal = synthetic()
    for p in cal["passes"]:
        got = predict_pass(cal, MODEL, p["phase"], p["batch"], p["prompt_len"], p["context_len"])
        want = sum(o["count"] * o["kernel_s"] for o in p["ops"].values()) + p["framework_s"]
        assert got.status == "calibrated" and got.time_s == pytest.approx(want, rel=1e-12)


def test_a_batch_between_the_calibrated_ones_is_interpolated_and_monotone():
    cal = synthetic()
    steps = [predict_pass(cal, MODEL, "decode", b, 8, 8) for b in (1, 2, 3, 4)]
    assert [s.status for s in steps] == ["calibrated", "interpolated", "interpolated", "calibrated"]
    assert all(a.time_s < b.time_s for a, b in zip(steps, steps[1:]))
    mid = steps[1]
    for op, o in mid.ops.items():           # each op between its two calibrated neighbours (same prompt, batch 1 / 4)
        lo, hi = steps[0].ops[op]["kernel_s"], steps[3].ops[op]["kernel_s"]
        assert min(lo, hi) <= o["kernel_s"] <= max(lo, hi), op


def test_beyond_the_calibration_is_extrapolated_and_says_how_far():
    cal = synthetic()
    p = predict_pass(cal, MODEL, "prefill", 16, 64)
    assert p.status == "extrapolated" and p.extrapolated
    q = p.ops["q_proj"]
    largest = max((o["work"], o["kernel_s"]) for c in cal["passes"] for n, o in c["ops"].items()
                  if n == "q_proj" and c["phase"] == "prefill")
    # tokens per pass 16·64 against the largest calibrated prefill's 4·8: 32x beyond, in the prefill regime
    assert q["status"] == "extrapolated" and q["extrapolation_ratio"] == pytest.approx(32)
    assert not q["regime_crossed"]
    assert largest[1] < q["kernel_s"] <= largest[1] * q["work"] / largest[0] * (1 + 1e-9)   # never past its rate
    r = request(cal, MODEL, 16, 64, 3)
    assert r["extrapolated"] and r["decode_steps"] == 2


def test_another_model_is_predicted_from_the_same_ops():
    cal = synthetic()
    p = predict_pass(cal, BIGGER, "decode", 2, 8, 9)
    assert p.status in ("interpolated", "extrapolated") and p.ops["q_proj"]["count"] == 3
    assert p.framework_s == pytest.approx(FRAMEWORK_PER_OP_S * sum(o["count"] for o in p.ops.values()))


def test_refusals_are_theory_errors():
    cal = synthetic()
    del_op = {**cal, "passes": [{**p, "ops": {k: v for k, v in p["ops"].items() if k != "rotary"}} for p in cal["passes"]]}
    with pytest.raises(TheoryError, match="no kernel for op 'rotary'"):
        predict_pass(del_op, MODEL, "decode", 1, 8, 8)
    with pytest.raises(TheoryError, match="no decode pass"):
        predict_pass({**cal, "passes": [p for p in cal["passes"] if p["phase"] == "prefill"]}, MODEL, "decode", 1, 8, 8)


def test_format_1_is_still_read_for_its_own_model():
    v2 = synthetic(workloads=((1, 8),))
    v1 = {"format": FORMAT_V1, "dtype": "fp32", "cache_state": "llc",
          "model": {"name": "m", **{k: getattr(MODEL, k) for k in ("hidden_size", "num_hidden_layers",
                    "num_attention_heads", "num_key_value_heads", "head_dim", "intermediate_size", "vocab_size")}},
          "workload": {"batch": 1, "prompt_len": 8, "generated": 4, "attention": "sdpa", "cache": "dynamic"},
          "passes": [{"phase": p["phase"], "context_len": p["context_len"], "framework_s": p["framework_s"],
                      "ops": {k: {x: v[x] for x in ("count", "kernel_s", "ci_low_s", "ci_high_s")}
                              for k, v in p["ops"].items()}} for p in v2["passes"]]}
    assert upgrade(v1, MODEL)["passes"] == v2["passes"]
    assert predict_pass(v1, MODEL, "decode", 2, 8, 9).time_s == pytest.approx(
        predict_pass(v2, MODEL, "decode", 2, 8, 9).time_s)
    with pytest.raises(TheoryError, match="format 1"):
        predict_pass(v1, BIGGER, "decode", 1, 8, 8)
