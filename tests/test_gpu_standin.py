"""The whole GPU loop on the CUDA stand-in (bench/devices/fake.py: kind "cuda", tensors on the CPU, torch.cuda faked):
`bench run` in process and isolated on two fake GPUs, `analysis report`, `analysis compare` with the CPU tiny run,
and `python -m theory` predicting from the run's ceilings file. It proves the plumbing, not the numbers."""
import json
import os
import subprocess
import sys

import pytest

from bench.devices import fake
from bench.store.points import MEASUREMENT_COLUMNS
from bench.store.files import read_csv
from conftest import TINY_SWEEP, subprocess_env, the_run

SWEEP = {**TINY_SWEEP, "name": "standin", "repeats": 2, "warmup_s": 0.0,
         "defaults": {**TINY_SWEEP["defaults"], "hidden_size": 32, "num_hidden_layers": 1, "generated": 3},
         "grids": [{"axes": {"attention": ["sdpa", "eager"]}}]}


@pytest.fixture(scope="module")
def cuda_run(tmp_path_factory):
    """In process, not isolated, with the profiler and the report: every CUDA branch of measure_point."""
    from bench.cli import main
    tmp = tmp_path_factory.mktemp("standin")
    sweep = tmp / "standin.json"
    sweep.write_text(json.dumps(SWEEP))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(fake.ENV, "1")
        assert main(["run", "--sweep", str(sweep), "--out", str(tmp / "out"), "--no-isolate"]) == 0
    return the_run(tmp / "out")


def test_standin_run_takes_every_cuda_branch(cuda_run):
    meta = json.loads((cuda_run / "run.json").read_text())
    assert meta["device"] == "cuda" and meta["device_name"].startswith("FAKE-CUDA")
    assert meta["isolate"] is False and "empty" in meta["memory_probe"]
    rows = read_csv(cuda_run / "measurements.csv")
    assert list(rows[0]) == MEASUREMENT_COLUMNS and len(rows) == 2 * 3
    for r in rows:
        assert r["status"] == "ok" and r["device"] == "cuda" and r["dtype"] == "bf16"
        assert r["gpu_uuid"] == fake.fake_uuid(0)
        assert r["hidden_syncs"] == "0"                      # set_sync_debug_mode ran (None on CPU)
        assert r["mem_reserved_bytes"] != "" and r["rss_peak_bytes"] == ""      # allocator columns, not RSS
    prof = read_csv(cuda_run / "profile.csv")
    assert {p["kernel"] for p in prof if p["op"] == "attn_core"} == {
        "flash-cpu: aten::_scaled_dot_product_flash_attention_for_cpu"}
    kernels = read_csv(cuda_run / "kernels.csv")              # kernels timed through the device seam
    assert kernels and {k["dtype"] for k in kernels} == {"bf16"}
    assert {k["source"] for k in kernels} == {"paired"}        # rounds between the repeats, on the device's timer
    rounds = [r for r in read_csv(cuda_run / "kernel_rounds.csv") if r["kind"] == "yardstick"]
    names = {r["name"] for r in rounds}                        # the yardsticks through the CUDA branch, in bf16
    assert "dispatch" in names and len(names) == 4 and all("|bf16|" in n for n in names - {"dispatch"})
    assert all(float(r["sample_s"]) > 0 for r in rounds)
    report = (cuda_run / "report.md").read_text()
    assert "no datasheet: device name 'FAKE-CUDA stand-in 0'" in report
    assert "kernel (device) time vs roofline" in report


def test_theory_predicts_from_the_cuda_ceilings_file(cuda_run):
    r = subprocess.run([sys.executable, "-m", "theory", "--model", "llama-2-7b", "--hardware",
                        str(cuda_run / "ceilings-bf16.json"), "--phase", "decode", "--prompt-len", "128",
                        "--format", "json"], capture_output=True, text=True, env=subprocess_env(), timeout=120)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)


def test_report_and_compare_with_a_cpu_run(cuda_run, tiny_run, tmp_path):
    from analysis.cli import main
    assert main(["report", str(cuda_run)]) == 0
    first = (cuda_run / "report.md").read_bytes()
    assert main(["report", str(cuda_run)]) == 0
    assert (cuda_run / "report.md").read_bytes() == first
    assert main(["compare", str(tiny_run), str(cuda_run), "--out", str(tmp_path / "cmp")]) == 0
    assert any((tmp_path / "cmp").iterdir())


def test_two_fake_gpus_isolated_in_parallel(tmp_path):
    """`bench run --gpus 0,1`: one child per GPU (CUDA_VISIBLE_DEVICES), rows carry their GPU's UUID, ceilings
    per GPU; each point's canary compared with its GPU's baseline (taken by that GPU's ceilings child); the
    end of the run (re-measure in a child, ceilings on every GPU) as an in-process run has it; then resume
    finds nothing left to do. (The canary was inert and the end skipped: issue 20, items 4 and 9.)"""
    sweep = tmp_path / "standin.json"
    sweep.write_text(json.dumps(SWEEP))
    calls = tmp_path / "cuda-calls.log"
    env = {**subprocess_env(), fake.ENV: "2", "OMP_NUM_THREADS": "1", fake.CONTEXT_LOG_ENV: str(calls)}
    r, parent = run_bench(["run", "--sweep", str(sweep), "--out", str(tmp_path / "out"), "--gpus", "0,1",
                           "--no-profile", "--no-report"], env)
    assert r.returncode == 0, r.stderr
    assert_parent_made_no_cuda_context(calls, parent)
    run_dir = the_run(tmp_path / "out")
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["isolate"] is True and meta["gpus"] == [0, 1]
    assert meta["gpu_uuids"] == {"0": fake.fake_uuid(0), "1": fake.fake_uuid(1)}
    assert set(meta["ceilings_by_gpu"]) == {"0", "1"}
    assert (run_dir / "ceilings-gpu1-bf16.json").exists()
    rows = read_csv(run_dir / "measurements.csv")
    assert len(rows) == 2 * 3 and all(x["status"] == "ok" for x in rows)
    by_point = {x["point_id"]: x["gpu_uuid"] for x in rows}
    assert set(by_point.values()) <= {fake.fake_uuid(0), fake.fake_uuid(1)} and len(by_point) == 2
    assert "GPU 0" in r.stderr and "GPU 1" in r.stderr
    assert {k["point_id"] for k in read_csv(run_dir / "compose.csv")} == set(by_point)   # kernels assembled too
    assert not list(run_dir.rglob(".*.tmp"))                    # every write landed whole
    assert meta["canary_baseline_s"] > 0 and set(meta["canary_by_gpu"]) == {"0", "1"}
    assert all(float(x["canary_ratio"]) > 0 for x in rows)     # readings against the baseline (was empty)
    assert set(meta["ceilings_drift_by_gpu"]) == {"0", "1"} and "ceilings_end" in meta
    assert not [f for f in run_dir.iterdir() if f.name.startswith(".") and f.name != ".lock"]   # hand-overs gone
    from bench.cli import main
    before = {f: f.stat().st_mtime_ns for f in (run_dir / "points").iterdir()}
    measured = (run_dir / "measurements.csv").read_bytes()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(fake.ENV, "2")
        mp.setenv(fake.CONTEXT_LOG_ENV, str(calls))
        assert main(["resume", str(run_dir), "--no-report"]) == 0        # nothing left: no child runs
    assert_parent_made_no_cuda_context(calls, os.getpid())
    assert {f: f.stat().st_mtime_ns for f in (run_dir / "points").iterdir()} == before
    assert (run_dir / "measurements.csv").read_bytes() == measured
    from bench.devices.select import get_device
    from bench.run.execute import ChildLauncher
    from bench.sweep import load_run_sweep
    with pytest.MonkeyPatch.context() as mp:       # the end-of-run re-measure of an isolated run: in a child
        mp.setenv(fake.ENV, "2")
        sw, _ = load_run_sweep(run_dir)
        launcher = ChildLauncher(run_dir, sw, get_device("cuda", 1, isolated=True), gpu="1")
        p = sw.points[0]
        pid = p.point_id("cuda")
        again, samples = launcher.measure(p, pid)
    assert again[0]["status"] == "ok" and float(again[0]["canary_ratio"]) > 0 and samples
    assert again[0]["gpu_uuid"] == fake.fake_uuid(1)
    launcher.replacing(pid)
    launcher.kept(pid, again, True)                # its paired kernels came back with its rows
    assert (run_dir / "points" / f"{pid}.compose.csv").exists()
    assert not [f for f in run_dir.iterdir() if f.name.startswith(".") and f.name != ".lock"]


def run_bench(args: list[str], env: dict) -> tuple[subprocess.CompletedProcess, int]:
    """`python -m bench ...` in a child of the test; returns its result and its process id."""
    proc = subprocess.Popen([sys.executable, "-m", "bench", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    out, err = proc.communicate(timeout=600)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), proc.pid


def assert_parent_made_no_cuda_context(calls, parent_pid: int) -> None:
    """The stand-in notes every call that would create a CUDA context, with the caller's pid: children made
    them (set_device, the ceilings' events ...), the parent none."""
    lines = [ln.split(" ", 1) for ln in calls.read_text().splitlines()]
    by_parent = sorted({name for pid, name in lines if int(pid) == parent_pid})
    assert by_parent == [], f"the parent of an isolated CUDA run created a CUDA context: {by_parent}"
    assert any(name == "set_device" for _, name in lines)            # the children did, so the log works


def test_isolated_parent_never_creates_a_cuda_context(tmp_path, monkeypatch):
    """Default CUDA run (isolated, one GPU): the ceilings and the device facts come from a child process; the
    parent that assembles the run never touches the GPU, so children see all its memory (issue 9, item 8).
    The point's child is a stub that dies at once (real point children run in the two-GPU test)."""
    import torch
    import bench.launch.child as iso
    monkeypatch.setattr(iso, "child_command", lambda d, i, *a: [sys.executable, "-c", "raise SystemExit(3)"])
    inits = []                                 # torch.cuda's own lazy init, reached by any call that needs a device
    real_init = torch.cuda._lazy_init
    monkeypatch.setattr(torch.cuda, "_lazy_init", lambda: (inits.append(1), real_init()))
    sweep = tmp_path / "one.json"
    adaptive = {k: v for k, v in SWEEP.items() if k != "repeats"}          # the end-of-run re-measure is on
    sweep.write_text(json.dumps({**adaptive, "min_repeats": 2, "max_repeats": 2,
                                 "grids": [{"axes": {"attention": ["sdpa"]}}]}))
    calls = tmp_path / "cuda-calls.log"
    from bench.cli import main
    with pytest.MonkeyPatch.context() as mp:                  # this process is the parent; the children inherit
        for k, v in {fake.ENV: "1", fake.CONTEXT_LOG_ENV: str(calls), "OMP_NUM_THREADS": "1",
                     "PYTHONPATH": subprocess_env()["PYTHONPATH"]}.items():
            mp.setenv(k, v)
        threads = torch.get_num_threads()
        try:
            assert main(["run", "--sweep", str(sweep), "--device", "cuda", "--threads", "2", "--out",
                         str(tmp_path / "out"), "--no-profile", "--no-report"]) == 0
        finally:
            torch.set_num_threads(threads)
    assert_parent_made_no_cuda_context(calls, os.getpid())
    assert inits == []
    run_dir = the_run(tmp_path / "out")
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["isolate"] is True and meta["device_name"] == "FAKE-CUDA stand-in 0"
    assert meta["threads"] == meta["torch_threads"] == 2
    assert meta["gpu_uuid"] == fake.fake_uuid(0) and meta["ceilings"]["bf16"]["kind"] == "gpu"
    assert meta["canary_baseline_s"] > 0 and meta["canary_slow_rel"] >= 0.05    # taken by the ceilings child
    assert meta["remeasured"] == [] and "ceilings_end" in meta     # the end of the run ran (was skipped: no key)
    assert "parent_device_used_bytes" not in meta and (run_dir / "ceilings-bf16.json").exists()
    row, = read_csv(run_dir / "measurements.csv")
    assert row["status"] == "error" and row["message"] == "child process failed: exit status 3"
    assert not [f for f in run_dir.iterdir() if f.name.startswith(".") and f.name != ".lock"]   # hand-over file gone
    for f in (run_dir / "points").iterdir():           # resume in a new parent: no probe, no device facts needed
        f.unlink()
    with pytest.MonkeyPatch.context() as mp:
        for k, v in {fake.ENV: "1", fake.CONTEXT_LOG_ENV: str(calls), "OMP_NUM_THREADS": "1"}.items():
            mp.setenv(k, v)
        assert main(["resume", str(run_dir), "--no-report"]) == 0
    assert_parent_made_no_cuda_context(calls, os.getpid())
    row, = read_csv(run_dir / "measurements.csv")
    assert row["status"] == "error"
