"""bench on tiny models, on CPU: files and schema, exact KV bytes, timer, resume, bad sweeps."""
import json
import signal
import subprocess
import sys
import time

import pytest

from bench.store.points import MEASUREMENT_COLUMNS
from bench.store.files import read_csv
from bench.sweep import load_sweep
from conftest import TINY_SWEEP, subprocess_env, the_run
from theory.hardware import hardware_from_json
from theory.memory import kv_cache_bytes
from theory.hfconfig import from_hf_config


def rows_of(run_dir):
    return read_csv(run_dir / "measurements.csv")


def test_run_writes_files_with_schema(tiny_run):
    meta = json.loads((tiny_run / "run.json").read_text())
    for key in ("run_id", "schema_version", "utc_time", "host", "device_name", "torch", "transformers", "python",
                "git_commit", "git_dirty", "threads", "ceilings", "sweep_sha1"):
        assert key in meta
    spec = hardware_from_json(meta["ceilings"]["fp32"], "ceilings")     # same shape as a theory hardware spec
    from theory.hardware import load_hardware
    assert load_hardware(str(tiny_run / "ceilings-fp32.json")) == spec
    assert spec.peak("fp32") > 0 and spec.memory_bandwidth_bytes_per_s > 0 and spec.launch_overhead_s > 0
    rows = rows_of(tiny_run)
    assert list(rows[0]) == MEASUREMENT_COLUMNS
    sweep, _ = load_sweep(str(tiny_run / "sweep.json"))
    assert len({r["point_id"] for r in rows}) == len(sweep.points)
    for pid in {r["point_id"] for r in rows}:
        mine = [r for r in rows if r["point_id"] == pid]
        assert [r["phase"] for r in mine] == ["prefill"] + ["decode"] * 4          # G=5: prefill + 4 decode steps
        assert [int(r["step"]) for r in mine] == [0, 0, 1, 2, 3]
        assert [int(r["context_len"]) for r in mine] == [0, 8, 9, 10, 11]
    for r in rows:
        assert r["status"] == "ok" and r["dtype"] == "fp32" and r["device"] == "cpu"
        assert float(r["time_p10_s"]) <= float(r["time_s"]) <= float(r["time_p90_s"])
        assert int(r["repeats"]) == 3
        assert r["mem_allocated_bytes"] == "" and r["mem_reserved_bytes"] == ""   # CUDA-only: empty, never 0
    samples = read_csv(tiny_run / "samples.csv")
    assert len(samples) == len(rows) * 4                                           # cold + 3 repeats


def test_kv_bytes_equal_theory_exactly(tiny_run):
    for r in rows_of(tiny_run):
        spec = from_hf_config({k: int(r[k]) for k in ("hidden_size", "num_hidden_layers", "num_attention_heads",
                                                      "num_key_value_heads", "head_dim", "intermediate_size",
                                                      "vocab_size")}, "row")
        batch = int(r["batch"])
        if r["cache"] == "static":
            expect = kv_cache_bytes(spec, batch, 0, "fp32", "static", int(r["max_cache_len"]))
        else:
            tokens = int(r["prompt_len"]) if r["phase"] == "prefill" else int(r["context_len"]) + 1
            expect = kv_cache_bytes(spec, batch, tokens, "fp32")
        assert int(r["kv_cache_bytes"]) == expect, r


def test_cpu_timer_measures_sleep():
    from bench.devices.cpu import CpuDevice
    d = CpuDevice(threads=1)
    t = d.start()
    time.sleep(0.02)
    elapsed = d.stop(t)
    assert elapsed >= 0.02
    t2 = d.start()
    assert d.stop(t2) < elapsed            # an empty interval reads shorter than a sleep


def write_sweep(tmp_path, obj, name="s.json"):
    p = tmp_path / name
    p.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return p


def run_bench(args, cwd):
    return subprocess.run([sys.executable, "-m", "bench", *args], capture_output=True, text=True, cwd=cwd,
                          env=subprocess_env(), timeout=600)


@pytest.mark.parametrize("case,content", [
    ("not json", "{not json"),
    ("unknown key", {**TINY_SWEEP, "repeat": 3}),
    ("unknown point key", {**TINY_SWEEP, "defaults": {"hidden": 64}}),
    ("heads do not divide width", {**TINY_SWEEP, "grids": [{"axes": {"hidden_size": [48]}, "head_dim": 32}]}),
    ("zero tokens", {**TINY_SWEEP, "grids": [{"axes": {"prompt_len": [0]}}]}),
    ("zero generated", {**TINY_SWEEP, "grids": [{"generated": 0}]}),
])
def test_bad_sweep_is_one_line_before_anything_runs(tmp_path, case, content):
    p = write_sweep(tmp_path, content)
    r = run_bench(["run", "--sweep", str(p), "--device", "cpu", "--out", str(tmp_path / "out")], tmp_path)
    assert r.returncode == 2, (case, r.stderr)
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "out").exists()


def test_resume_after_sigkill(tmp_path):
    sweep = {**TINY_SWEEP, "repeats": 2, "warmup_s": 0.0,
             "grids": [{"axes": {"hidden_size": [32, 64, 96, 128, 160, 192]}}]}
    p = write_sweep(tmp_path, sweep)
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "bench", "run", "--sweep", str(p), "--device", "cpu",
                             "--out", str(out), "--no-report"], cwd=tmp_path, env=subprocess_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while time.time() < deadline:
        done = list(out.glob("*/points/*.samples.csv"))
        if len(done) >= 2:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    run_dir = the_run(out)
    finished_before = [f for f in (run_dir / "points").glob("*.csv") if f.name.count(".") == 1]
    assert 0 < len(finished_before) < 6
    r = run_bench(["resume", str(run_dir), "--no-report"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert "already done" in r.stderr
    assert r.stdout.strip().splitlines()[-1] == str(run_dir)            # the run directory is the last line
    rows = rows_of(run_dir)
    keys = [(x["point_id"], x["phase"], x["step"]) for x in rows]
    assert len(keys) == len(set(keys)) == 6 * 5
    # Change the sweep file: resume now refuses.
    p.write_text(json.dumps({**sweep, "repeats": 3}))
    r = run_bench(["resume", str(run_dir)], tmp_path)
    assert r.returncode == 2 and "changed" in r.stderr


@pytest.mark.cuda
def test_cuda_timer_and_memory_probe():
    import torch
    from bench.devices.cuda import CudaDevice
    d = CudaDevice()
    x = torch.randn(4096, 4096, device="cuda")
    d.reset_peak()
    t = d.start()
    y = x @ x
    assert d.stop(t) > 0
    assert d.read_peak().allocated_bytes >= y.numel() * 4


def test_isolated_points_match_in_process_schema(tmp_path):
    sweep = {**TINY_SWEEP, "repeats": 2, "warmup_s": 0.0, "grids": [{"axes": {"hidden_size": [32, 64]}}]}
    p = write_sweep(tmp_path, sweep)
    r = run_bench(["run", "--sweep", str(p), "--device", "cpu", "--out", str(tmp_path / "out"), "--isolate",
                   "--no-report", "--no-profile"], tmp_path)
    assert r.returncode == 0, r.stderr
    run_dir = the_run(tmp_path / "out")
    assert json.loads((run_dir / "run.json").read_text())["isolate"] is True
    rows = rows_of(run_dir)
    assert len(rows) == 2 * 5 and all(x["status"] == "ok" for x in rows)
    assert list(rows[0]) == MEASUREMENT_COLUMNS
