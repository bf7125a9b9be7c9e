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


def test_collectives_are_timed_between_device_syncs_that_never_sleep(monkeypatch, tmp_path):
    """The timing path on CPU: a one-rank gloo group times all-reduce and all-gather between Ctx.sync calls; on
    CUDA, Ctx.sync spins on an event (no sleep, unlike TORCH_NCCL_BLOCKING_WAIT's wait) up to the run's
    timeout, past which the rank stops with a TimeoutError (main prints it as its one line)."""
    import time
    import torch.distributed as dist
    from bench import comms
    from bench.devices import fake
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        ctx = comms.Ctx("gloo", "cpu", 5.0)
        calls = []
        monkeypatch.setattr(ctx, "sync", lambda: calls.append("sync"))
        for op in ("all_reduce", "all_gather"):
            samples = comms.time_collective(ctx, op, 1024, 1, 3)
            assert len(samples) == 3 and all(s > 0 for s in samples)
        assert len(calls) == 2 * 4 * 3                      # before and after each call, and before each .item()
    finally:
        dist.destroy_process_group()

    class SlowEvent:
        polls = 0

        def record(self):
            pass

        def query(self):
            SlowEvent.polls += 1
            return SlowEvent.polls > 3
    cuda = fake.FakeCuda(1)
    cuda.Event = SlowEvent
    ctx = object.__new__(comms.Ctx)
    ctx.backend, ctx.device, ctx.rank, ctx.world, ctx.cuda, ctx.timeout_s = "nccl", "cuda:0", 0, 2, cuda, 30.0
    monkeypatch.setattr(time, "sleep", lambda s: pytest.fail("a timed wait slept"))
    ctx.sync()
    assert SlowEvent.polls == 4
    SlowEvent.polls = -10**9                                 # a device that never finishes (a dead peer)
    now = iter(range(0, 10**6, 10))
    ctx.clock = lambda: next(now)
    with pytest.raises(TimeoutError, match="did not finish within 30 s"):
        ctx.sync()
