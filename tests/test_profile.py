"""Profiler attribution on the shared tiny CPU run: ops, shares, FLOP cross-check, traces, --no-profile."""
import json

import pandas as pd
import pytest

from analysis.breakdown import flop_check
from analysis.join import join
from analysis.load import load_run
from theory.ops import OPS

ALWAYS = {"embedding", "input_norm", "q_proj", "k_proj", "v_proj", "rotary", "kv_update", "o_proj", "residual_add",
          "post_attention_norm", "gate_proj", "up_proj", "act_mul", "down_proj", "final_norm", "lm_head"}


@pytest.fixture(scope="module")
def profile(tiny_run):
    p = pd.read_csv(tiny_run / "profile.csv", dtype={"point_id": str})
    m = pd.read_csv(tiny_run / "measurements.csv", dtype={"point_id": str})
    return p, m


def test_every_theory_op_that_runs_has_positive_time(profile):
    p, m = profile
    attention = m.drop_duplicates("point_id").set_index("point_id")["attention"]
    for (pid, phase, step), g in p.groupby(["point_id", "phase", "step"]):
        ops = set(g.loc[g["time_s"] > 0, "op"])
        expected = ALWAYS | ({"attn_core"} if attention[pid] == "sdpa" else {"attn_scores", "attn_softmax", "attn_values"})
        if attention[pid] == "eager":
            expected |= {"repeat_kv"}                    # the tiny sweep uses GQA (kv_group 2)
        assert expected <= ops, (pid, phase, step, expected - ops)
        assert set(g["op"]) <= set(OPS) | {"unattributed"}


def test_shares_and_remainder_sum_to_the_profiled_step(profile):
    p, _ = profile
    for _, g in p.groupby(["point_id", "phase", "step"]):
        assert g["time_s"].sum() == pytest.approx(g["step_profiled_s"].iloc[0], rel=1e-9)
        assert g["share"].sum() == pytest.approx(1.0, rel=1e-9)
        assert (g["inflation"] > 0).all()
        assert g.loc[g["op"] == "unattributed", "share"].sum() < 0.5


def test_inflation_recorded_in_run_metadata(tiny_run):
    meta = json.loads((tiny_run / "run.json").read_text())
    infl = meta["profile_inflation"]
    assert infl["profiled_steps"] > 0 and infl["min"] <= infl["median"] <= infl["max"]


def test_profiled_steps_are_prefill_first_and_last(profile):
    p, m = profile
    gen = int(m["generated"].iloc[0])
    steps = set(map(tuple, p[["phase", "step"]].drop_duplicates().to_numpy()))
    assert steps == {("prefill", 0), ("decode", 0), ("decode", gen - 2)}


def test_flop_counter_agrees_with_theory(tiny_run):
    run = load_run(tiny_run)
    f = flop_check(run, join(run))
    linear = f[f["op"].isin(["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "lm_head"])]
    assert len(linear) > 0 and (linear["flops_counted"] == linear["flops_theory"]).all()
    attn = f[f["op"] == "attention"]
    assert len(attn) > 0
    assert attn["ratio"].between(0.99, 1.01).all()          # tolerance: exact in practice, unhalved square


def test_trace_opens_as_json_with_events(tiny_run, profile):
    p, _ = profile
    trace = tiny_run / p["trace"].dropna().iloc[0]
    data = json.loads(trace.read_text())
    events = data["traceEvents"] if isinstance(data, dict) else data
    assert any(e.get("name", "").startswith("mod::") for e in events)
    assert any(e.get("name", "").startswith("aten::") for e in events)


def test_no_profile_writes_no_profile_rows(tmp_path, tiny_sweep_file):
    import io
    from bench.devices.cpu import CpuDevice
    from bench.run.execute import execute
    from bench.run.create import start_run
    from bench.sweep import load_sweep
    sweep, path = load_sweep(str(tiny_sweep_file))
    sub = sweep.__class__(sweep.name, sweep.description, 1, 0.0, sweep.points[:1], sweep.source_text)
    device = CpuDevice(threads=1)
    run_dir = start_run(sub, path, device, tmp_path, log=io.StringIO(), profile=False)
    execute(run_dir, sub, device, log=io.StringIO())
    assert (run_dir / "measurements.csv").exists()
    assert not (run_dir / "profile.csv").exists() and not (run_dir / "traces").exists()
