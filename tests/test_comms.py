"""torch.distributed on this machine: gloo with 2 ranks, one thread each, explicit collective timeout."""
import json
import shutil
import subprocess
import sys

import pandas as pd
import pytest

from conftest import subprocess_env
from bench.comms import fit_alpha_beta, ring_factor


def torchrun(args, cwd, timeout=300):
    exe = shutil.which("torchrun", path=str(__import__("pathlib").Path(sys.executable).parent))
    cmd = [exe] if exe else [sys.executable, "-m", "torch.distributed.run"]
    return subprocess.run(cmd + ["--standalone", "--nproc-per-node", "2", "-m", "bench", "comms", *args],
                          capture_output=True, text=True, cwd=cwd, env={**subprocess_env(), "OMP_NUM_THREADS": "1"},
                          timeout=timeout)


@pytest.fixture(scope="module")
def comms_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("comms")
    r = torchrun(["--out", str(out), "--max-bytes", str(4 * 2**20), "--repeats", "5", "--timeout-s", "60",
                  "--tp-hidden", "128", "256", "--run-dir-file", str(out / "last-run")], out)
    assert r.returncode == 0, r.stderr[-2000:]
    run_dir = next(p for p in out.iterdir() if p.is_dir())
    # what `make bench-comms` reads (not torchrun's last line, which NCCL's debug log can follow)
    assert (out / "last-run").read_text().strip() == str(run_dir)
    return run_dir


def test_fit_recovers_known_alpha_beta():
    alpha, beta, n = 20e-6, 5e9, 4
    sizes = [2**k for k in range(4, 26)]
    times = [alpha + ring_factor("all_reduce", n) * s / beta for s in sizes]
    fit = fit_alpha_beta(sizes, times, "all_reduce", n)
    assert fit["interconnect_latency_s"] == pytest.approx(alpha, rel=1e-6)
    assert fit["interconnect_bandwidth_bytes_per_s"] == pytest.approx(beta, rel=1e-6)


def test_allreduce_sweep_fits_positive_alpha_beta(comms_run):
    fit = json.loads((comms_run / "comms_fit.json").read_text())
    assert fit["interconnect_latency_s"] > 0 and fit["interconnect_bandwidth_bytes_per_s"] > 0
    rows = pd.read_csv(comms_run / "comms.csv")
    assert set(rows["op"]) == {"all_reduce", "all_gather"} and (rows["world_size"] == 2).all()
    assert (rows["time_p10_s"] <= rows["time_s"]).all() and (rows["busbw_bytes_per_s"] > 0).all()
    assert (comms_run / "comms-rank0.csv").exists() and (comms_run / "comms-rank1.csv").exists()


def test_sharded_layer_matches_unsharded(comms_run):
    tp = pd.read_csv(comms_run / "tp.csv")
    assert set(tp["phase"]) == {"prefill", "decode"} and set(tp["hidden_size"]) == {128, 256}
    assert (tp["max_abs_diff"] <= 1e-4 * tp["reference_max_abs"].clip(lower=1)).all()
    assert (tp["allreduces"] == 2).all() and (tp["comm_s"] > 0).all() and (tp["compute_s"] > 0).all()


def test_comms_section_in_report(comms_run):
    from analysis.report import write_report
    text = write_report(comms_run).read_text()
    assert "Fitted interconnect" in text and "Tensor-parallel decoder layer" in text
    assert "latency-bound" in text


def test_comms_without_torchrun_is_one_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "bench", "comms"], capture_output=True, text=True, env=subprocess_env())
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "torchrun" in r.stderr


def test_dead_rank_fails_the_run_instead_of_hanging(tmp_path):
    r = torchrun(["--out", str(tmp_path), "--timeout-s", "10", "--fail-rank", "1", "--no-tp"], tmp_path, timeout=120)
    assert r.returncode != 0
    assert "rank 1" in r.stderr or "failed" in r.stderr.lower()
