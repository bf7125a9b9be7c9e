"""`python -m analysis repeatability` on two tiny runs: a copy of the shared tiny run, and one with a point slowed."""
import json
import shutil
import subprocess
import sys

import pandas as pd

from analysis.repeatability import write_repeatability
from tests.conftest import ROOT, subprocess_env


def twin(tiny_run, tmp_path, name, slow_point=None, factor=1.10):
    d = tmp_path / name
    shutil.copytree(tiny_run, d)
    if slow_point:
        s = pd.read_csv(d / "samples.csv", dtype={"point_id": str})
        s.loc[s["point_id"] == slow_point, "time_s"] *= factor
        s.to_csv(d / "samples.csv", index=False)
    return d


def test_identical_runs_agree_everywhere(tiny_run, tmp_path):
    b = twin(tiny_run, tmp_path, "b")
    out = write_repeatability(tiny_run, b, tmp_path / "rep")
    summary = json.loads((out.parent / "summary.json").read_text())
    assert set(summary["phases"]) == {"prefill", "decode"}
    assert all(p["agree_share"] == 1.0 and p["overlap_share"] == 1.0 for p in summary["phases"].values())


def test_a_slowed_point_is_the_worst_pair(tiny_run, tmp_path):
    pid = pd.read_csv(tiny_run / "measurements.csv", dtype={"point_id": str})["point_id"].iloc[0]
    b = twin(tiny_run, tmp_path, "b", slow_point=pid)
    out = write_repeatability(tiny_run, b, tmp_path / "rep")
    summary = json.loads((out.parent / "summary.json").read_text())
    for phase in ("prefill", "decode"):
        s = summary["phases"][phase]
        assert s["agree_share"] < 1.0
        assert s["worst"][0]["point_id"] == pid and abs(s["worst"][0]["ratio_b_over_a"] - 1.10) < 1e-6
    assert "±3%" in out.read_text()


def test_the_worst_pairs_are_named_by_their_shape(tiny_run, tmp_path):
    m = pd.read_csv(tiny_run / "measurements.csv", dtype={"point_id": str})
    pid = m["point_id"].iloc[0]
    b = twin(tiny_run, tmp_path, "b", slow_point=pid)
    text = write_repeatability(tiny_run, b, tmp_path / "rep").read_text()
    r = m[m["point_id"] == pid].iloc[0]
    shape = f"d={int(r['hidden_size'])} L={int(r['num_hidden_layers'])} b={int(r['batch'])}"
    worst = [line for line in text.splitlines() if line.startswith("- decode:")][0]
    assert worst.startswith(f"- decode: {shape}") and f"[{pid}]" not in worst
    assert pid in (tmp_path / "rep" / "repeatability.csv").read_text()     # the csv keeps the id for joins


def test_cli_refuses_one_run_in_one_line(tiny_run):
    r = subprocess.run([sys.executable, "-m", "analysis", "repeatability", str(tiny_run)], capture_output=True,
                       text=True, cwd=ROOT, env=subprocess_env())
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "two run" in r.stderr


def test_the_report_says_how_fast_the_box_was_in_each_run(tiny_run, tmp_path):
    b = twin(tiny_run, tmp_path, "b")
    meta = json.loads((b / "run.json").read_text())
    meta["canary_baseline_s"] = 2 * json.loads((tiny_run / "run.json").read_text())["canary_baseline_s"]
    (b / "run.json").write_text(json.dumps(meta))
    text = write_repeatability(tiny_run, b, tmp_path / "rep").read_text()
    assert "(time b/a 2.00)" in text and "matmul ceiling rate b/a 1.00" in text
