"""analysis on the shared real tiny CPU run, and on synthetic rows with known answers."""
import json
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from analysis.fit import fit_and_score, fit_tau
from analysis.join import join
from analysis.kvmem import kv_decomposition
from analysis.load import load_run
from analysis.report import write_report
from conftest import subprocess_env, synthetic_cuda_kv_rows


@pytest.fixture(scope="module")
def report(tiny_run):
    return write_report(tiny_run)


def test_join_predicts_every_measured_row(tiny_run):
    run = load_run(tiny_run)
    j = join(run)
    assert len(j) == len(run.ok) > 0
    assert j["predicted_time_s_ceilings"].gt(0).all() and j["predicted_time_s_ceilings_ideal"].gt(0).all()
    assert j["predicted_time_s_datasheet"].isna().all()                 # a CPU has no datasheet
    assert (j["kv_cache_bytes"] == j["kv_cache_bytes_theory"]).all()
    # "as run" with a copying dynamic cache moves more bytes than the ideal append.
    dyn = j[(j["cache"] == "dynamic") & (j["phase"] == "decode")]
    assert (dyn["predicted_time_s_ceilings"] >= dyn["predicted_time_s_ceilings_ideal"]).all()


def test_report_files(tiny_run, report):
    text = report.read_text()
    for section in ("Measured ceilings", "How far from the arithmetic", "Why: flags", "Points", "Figures"):
        assert section in text
    summary = json.loads((tiny_run / "summary.json").read_text())
    for phase in ("decode", "prefill"):
        assert 0 <= summary[phase]["median_abs_error"] <= summary[phase]["p90_abs_error"]
        assert isinstance(summary[phase]["flags"], list)
    assert all({"kind", "message"} <= set(f) for f in summary["flags"])
    kinds = {f["kind"] for f in summary["flags"]}
    assert "kv_memory" in kinds and "kv_memory_static_control" in kinds
    joined = pd.read_csv(tiny_run / "joined.csv")
    assert {"measured_time_s", "predicted_time_s_ceilings", "predicted_time_s_datasheet", "ratio_ceilings"} <= set(joined)
    figs = list((tiny_run / "figures").glob("*.png"))
    assert len(figs) >= 5 and all(f.stat().st_size > 5000 for f in figs)
    for f in figs:
        assert f"figures/{f.name}" in text


def test_kv_decomposition_on_real_rows(tiny_run):
    run = load_run(tiny_run)
    j = join(run)
    for pid, g in j[j["phase"] == "decode"].groupby("point_id"):
        d = kv_decomposition(g.sort_values("context_len"))
        if d["cache"] == "dynamic":
            assert d["factor_tensor"] == pytest.approx(1.0)
            assert d["factor_width_dtype"] == pytest.approx(d["theory_bytes_per_token"] / d["naive_bf16_mha_bytes_per_token"])
            assert d["reserved_bytes_per_token"] is None                 # CPU: no allocator counters
        else:
            assert d["tensor_bytes_per_token"] == pytest.approx(0.0, abs=1e-6)


def test_kv_decomposition_cuda_shaped_synthetic():
    # The seed's model: d=1024, L=8, but run in fp32 with MHA; a cat-copying cache peaks at 2x its tensors and
    # the allocator reserves in 2 MiB segments (here 1.5x the peak growth on average). Known answer: 2·1·2·1.5 = 6.
    L, d = 8, 1024
    rows = synthetic_cuda_kv_rows()
    r = kv_decomposition(rows)
    assert r["naive_bf16_mha_bytes_per_token"] == 4 * L * d == 32768
    assert r["factor_width_dtype"] == pytest.approx(2.0)
    assert r["factor_tensor"] == pytest.approx(1.0)
    assert r["factor_transient"] == pytest.approx(2.0)
    assert r["factor_rounding"] == pytest.approx(1.5)
    assert r["reserved_over_naive"] == pytest.approx(6.0)
    assert r["reserved_over_naive"] == pytest.approx(
        r["factor_width_dtype"] * r["factor_tensor"] * r["factor_transient"] * r["factor_rounding"])


def test_overhead_fit_recovers_tau():
    rng = np.random.default_rng(3)
    tau = 7e-6
    rows = []
    for p in range(12):
        n = int(rng.integers(50, 800))
        roof = float(rng.uniform(1e-5, 5e-3))
        for step in range(5):
            rows.append({"point_id": f"p{p}", "phase": "decode", "n_dispatch": n,
                         "predicted_time_s_ceilings": roof, "predicted_memory_s": roof, "predicted_compute_s": roof / 10,
                         "measured_time_s": (roof + n * tau) * float(rng.normal(1, 0.01)), "working_set_bytes": 10**12})
    df = pd.DataFrame(rows)
    assert fit_tau(df) == pytest.approx(tau, rel=0.05)
    out, summary = fit_and_score(df, llc_bytes=None)
    assert summary["decode"]["tau_s"] == pytest.approx(tau, rel=0.05)
    assert summary["decode"]["median_abs_error"] < 0.03
    assert summary["decode"]["before_fit"]["median_abs_error"] > summary["decode"]["median_abs_error"]


def test_fit_never_negative():
    df = pd.DataFrame({"point_id": ["a", "b"], "n_dispatch": [10, 20], "predicted_time_s_ceilings": [2.0, 3.0],
                       "measured_time_s": [1.0, 1.5]})
    assert fit_tau(df) == 0.0


def test_compare_two_runs(tiny_run, tmp_path, tiny_sweep_file):
    from bench.devices.cpu import CpuDevice
    from bench.run.execute import execute
    from bench.run.create import start_run
    from bench.sweep import load_sweep
    from analysis.compare import write_compare
    import io
    sweep, path = load_sweep(str(tiny_sweep_file))
    device = CpuDevice(threads=1)
    sub = sweep.__class__(sweep.name, sweep.description, sweep.repeats, sweep.warmup_s, sweep.points[:3], sweep.source_text)
    second = start_run(sub, path, device, tmp_path, log=io.StringIO())
    execute(second, sub, device, log=io.StringIO())
    meta = json.loads((second / "run.json").read_text())
    meta["threads"] = 2                                              # pretend a different box setting
    (second / "run.json").write_text(json.dumps(meta))
    out = write_compare([tiny_run, second], tmp_path / "cmp")
    text = out.read_text()
    assert "threads" in text and "not alike" in text
    frame = pd.read_csv(tmp_path / "cmp" / "compare.csv")
    assert frame["point_id"].nunique() == 3 and set(frame["phase"]) == {"prefill", "decode"}
    assert (frame["ratio_ci_low"] <= frame["measured_ratio_b_over_a"]).all()
    assert (frame["measured_ratio_b_over_a"] <= frame["ratio_ci_high"]).all()


def test_cli_errors_are_one_line(tmp_path):
    for args in (["report", str(tmp_path / "missing")], ["compare", str(tmp_path)], ["compare", str(tmp_path), str(tmp_path)]):
        r = subprocess.run([sys.executable, "-m", "analysis", *args], capture_output=True, text=True, env=subprocess_env())
        assert r.returncode == 2 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_partial_run_is_reported(tiny_run, tmp_path):
    import shutil
    partial = tmp_path / "partial"
    shutil.copytree(tiny_run, partial)
    meta = json.loads((partial / "run.json").read_text())
    meta["points"] += 3
    (partial / "run.json").write_text(json.dumps(meta))
    text = write_report(partial).read_text()
    assert "Partial run" in text


def test_calibrated_fit_recovers_known_factors():
    from analysis.fit import fit_calibrated
    rng = np.random.default_rng(5)
    rows = []
    for p in range(15):
        mem, comp, n = float(rng.uniform(1e-4, 5e-3)), float(rng.uniform(1e-5, 5e-3)), int(rng.integers(50, 900))
        for step in range(3):
            rows.append({"point_id": f"p{p}", "predicted_memory_s": mem, "predicted_compute_s": comp, "n_dispatch": n,
                         "measured_time_s": (1.6 * mem + 1.2 * comp + n * 9e-6) * float(rng.normal(1, 0.005))})
    c = fit_calibrated(pd.DataFrame(rows))
    assert c["k_mem"] == pytest.approx(1.6, rel=0.03)
    assert c["k_comp"] == pytest.approx(1.2, rel=0.03)
    assert c["tau_s"] == pytest.approx(9e-6, rel=0.05)


def test_summary_has_both_fits(tiny_run, report):
    summary = json.loads((tiny_run / "summary.json").read_text())
    for phase in ("decode", "prefill"):
        c = summary[phase]["calibrated"]
        assert c["k_mem"] >= 0 and c["k_comp"] >= 0 and c["tau_s"] >= 0
        assert 0 <= c["median_abs_error"] <= c["p90_abs_error"]
