"""The CUDA code paths, each driven on CPU: the CUDA stand-in (bench/devices/fake.py), profiler events shaped like
real ones (torch's own FunctionEvent) and a fake torch.distributed (NVML: test_nvml.py). They prove plumbing, not numbers:
ceilings and memory probes, the child timeout, --device auto, the ceilings child, hidden syncs, GPU profile
shares, collectives and NCCL setup."""
import contextlib
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch.autograd import DeviceType
from torch.autograd.profiler_util import FunctionEvent

from bench.devices import fake
from conftest import ROOT, TINY_SWEEP, synthetic_cuda_kv_rows

TINY = {**TINY_SWEEP, "repeats": 2, "warmup_s": 0.0,
        "defaults": {**TINY_SWEEP["defaults"], "hidden_size": 32, "num_hidden_layers": 1, "generated": 3},
        "grids": [{"axes": {"attention": ["sdpa"]}}]}


@pytest.fixture
def standin(monkeypatch):
    monkeypatch.setenv(fake.ENV, "1")
    from bench.devices.select import get_device
    yield get_device("cuda")


def tiny_sweep(tmp_path):
    from bench.sweep import load_sweep
    p = tmp_path / "tiny.json"
    p.write_text(json.dumps(TINY))
    return load_sweep(str(p), "cuda")


# 1 + 8: the ceilings file of a CUDA run loads as a theory hardware spec; the parent frees its buffers.
def test_cuda_run_ceilings_load_in_theory_and_parent_frees_memory(standin, tmp_path):
    from bench.run.create import start_run
    from theory.hardware import load_hardware
    sweep, path = tiny_sweep(tmp_path)
    run_dir = start_run(sweep, path, standin, tmp_path / "out", log=io.StringIO())
    spec = load_hardware(str(run_dir / "ceilings-bf16.json"))          # raised "kind must be 'gpu' or 'cpu'"
    assert spec.kind == "gpu" and spec.peak("bf16") > 0
    log = standin.cuda.log
    assert "empty_cache" in log                                         # after the ceilings, before any point
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["ceilings"]["bf16"]["kind"] == "gpu"
    assert meta["parent_device_used_bytes"] >= 0 and "empty" in meta["memory_probe"]
    assert meta["gpu_uuid"] == fake.fake_uuid(0) and meta["l2_cache_bytes"] == fake.FAKE_L2_BYTES


# 3 + 9: the memory probe starts from an empty cache; NVML samples only while the timed repeats run.
def test_probe_starts_from_empty_cache_and_sampling_covers_the_repeats(standin, monkeypatch):
    from bench.model import build_model
    from bench.timing.repeats import measure
    sweep, _ = tiny_sweep(Path(os.environ.get("TMPDIR", "/tmp")))
    p = sweep.points[0]
    model = build_model(p.spec(), "cpu", "bf16", "sdpa")
    ids = torch.randint(0, p.spec().vocab_size, (1, p.prompt_len))
    log = standin.cuda.log
    events = []

    class Boundaries:
        def sample(self):                                              # after each timed repeat, no thread
            events.append(("sample", len(log)))

    @contextlib.contextmanager
    def sampling():
        events.append(("enter", len(log)))
        yield Boundaries()
        events.append(("exit", len(log)))
    monkeypatch.setattr(standin, "sampling", sampling)
    log.clear()
    standin.cuda.allocated, standin.cuda.reserved = 100, 900           # a warm caching allocator
    m = measure(model, standin, ids, p.generated, p.cache, p.max_cache_len, repeats=2, warmup_s=0.0)
    first_probe = log.index("reset_peak_memory_stats")
    assert "empty_cache" in log[:first_probe]                          # fails without the empty_cache
    assert m.memory.memory[0].reserved_bytes == 0 and standin.cuda.reserved == 100
    assert [e for e, _ in events] == ["enter", "sample", "sample", "exit"]
    (_, entered), *_, (_, exited) = events
    assert entered > max(i for i, x in enumerate(log) if x == "reset_peak_memory_stats")   # after the probe
    assert exited > entered and len(m.repeats) == 2


def kernel_event(i, name, start, end, annotation=False):
    return FunctionEvent(i, name, 1, start, end, device_type=DeviceType.CUDA, is_user_annotation=annotation)


# 4: the GPU copy of a user annotation spans the whole step; it is not a kernel.
def test_gpu_idle_fraction_ignores_user_annotations():
    from bench.profiling.profile import gpu_idle_fraction
    events = [kernel_event(1, "mod::model", 0, 100, annotation=True),
              kernel_event(2, "ampere_bf16_gemm", 0, 20), kernel_event(3, "flash_fwd_kernel", 60, 100)]
    assert gpu_idle_fraction(events) == pytest.approx(0.4)             # was 0.0: the annotation looked busy


# 5: the backend that ran, not the dispatcher op.
def test_sdpa_backend_from_the_ops_and_kernels_under_the_dispatcher():
    from bench.profiling.profile import sdpa_backend
    disp = FunctionEvent(1, "aten::scaled_dot_product_attention", 1, 0, 50)
    backend = FunctionEvent(2, "aten::_scaled_dot_product_flash_attention", 1, 1, 49)
    inner = FunctionEvent(3, "aten::_flash_attention_forward", 1, 2, 48)
    inner.append_kernel("void pytorch_flash::flash_fwd_kernel<Flash_fwd_kernel_traits<128>>", 0, 30)
    disp.append_cpu_child(backend)
    backend.append_cpu_child(inner)
    assert sdpa_backend(disp) == ("flash: aten::_scaled_dot_product_flash_attention / "
                                  "void pytorch_flash::flash_fwd_kernel<Flash_fwd_kernel_traits<128>>")
    math = FunctionEvent(4, "aten::scaled_dot_product_attention", 1, 0, 50)
    math.append_cpu_child(FunctionEvent(5, "aten::_scaled_dot_product_attention_math", 1, 1, 49))
    assert sdpa_backend(math).startswith("math: ")
    assert sdpa_backend(FunctionEvent(6, "aten::bmm", 1, 0, 1)) == ""


def test_sdpa_backend_recorded_on_the_cpu_run(tiny_run):
    import pandas as pd
    p = pd.read_csv(tiny_run / "profile.csv")
    kernels = set(p.loc[p["op"] == "attn_core", "kernel"])
    assert kernels == {"flash-cpu: aten::_scaled_dot_product_flash_attention_for_cpu"}


# 6: on CUDA, kernel-time shares against the roofline alone; wall against roofline + overhead.
def test_cuda_shares_compare_kernel_time_with_roofline_alone(tiny_run):
    from analysis.breakdown import breakdown_table
    from analysis.fit import fit_and_score
    from analysis.join import join
    from analysis.load import load_run
    run = load_run(tiny_run)
    df, _ = fit_and_score(join(run), None)
    no_tau, big_tau = df.assign(tau_s=0.0), df.assign(tau_s=1e-3)
    cpu = breakdown_table(run, big_tau)
    assert "overhead" in cpu["share_basis"].iloc[0] and "kernel_s" not in cpu
    run.meta["device"] = "cuda"
    cuda, ref = breakdown_table(run, big_tau), breakdown_table(run, no_tau)
    assert (cuda["predicted_share_mlp"] - ref["predicted_share_mlp"]).abs().max() < 1e-12
    assert (cuda["predicted_share_mlp"] - cpu["predicted_share_mlp"]).abs().max() > 0.01
    assert cuda["share_basis"].iloc[0].startswith("kernel (device) time vs roofline")
    assert (cuda["predicted_roofline_overhead_s"] > cuda["predicted_roofline_s"]).all()


# 7: a hung child is killed at its timeout and leaves a `timeout` row; the timeout grows with predicted work.
def test_hung_child_leaves_timeout_row(standin, tmp_path, monkeypatch):
    import bench.launch.child as iso
    from bench.launch.budget import TIMEOUT_FLOOR_S, child_timeout_s
    from bench.store.files import read_csv
    from bench.run.create import start_run
    from bench.sweep import Point
    from theory.hardware import load_hardware
    sweep, path = tiny_sweep(tmp_path)
    run_dir = start_run(sweep, path, standin, tmp_path / "out", log=io.StringIO())
    meta = json.loads((run_dir / "run.json").read_text())
    (run_dir / "run.json").write_text(json.dumps({**meta, "gpu_uuids": {"1": fake.fake_uuid(1)}}))   # as --gpus 0,1
    monkeypatch.setattr(iso, "child_command", lambda d, i, *a: [sys.executable, "-c", "import time; time.sleep(60)"])
    p = sweep.points[0]
    pid = p.point_id("cuda")
    t0 = time.perf_counter()
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    rows = iso.run_child(run_dir, 0, p, pid, standin, sweep, gpu="1", timeout_s=1.0)
    assert time.perf_counter() - t0 < 30
    assert rows[0]["status"] == "timeout" and "limit" in rows[0]["message"]
    assert rows[0]["gpu_uuid"] == fake.fake_uuid(1)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    assert iso.child_env("1")["CUDA_VISIBLE_DEVICES"] == "5"          # our index 1 is the board's GPU 5
    assert read_csv(run_dir / "points" / f"{pid}.csv")[0]["status"] == "timeout"
    hw = load_hardware("h100-sxm-80gb")
    small = child_timeout_s(p, 10, 2.0, hw)
    big = child_timeout_s(Point(model="llama-2-7b", prompt_len=1024, generated=1000), 10, 2.0, hw)
    assert TIMEOUT_FLOOR_S < small < big
    assert iso.timeout_for(run_dir, p, sweep, "cuda") > TIMEOUT_FLOOR_S


# 2: every tensor handed to a collective lives on the rank's device.
class FakeDist:
    class ReduceOp:
        MAX = "max"

    def __init__(self):
        self.devices = []

    def all_reduce(self, t, op=None):
        self.devices.append(t.device.type)

    def barrier(self, device_ids=None):
        pass


def test_tp_layer_hands_collectives_tensors_on_the_rank_device(monkeypatch):
    import bench.comms as comms
    import bench.tp as tp
    from bench.comms import Ctx
    fd = FakeDist()
    monkeypatch.setattr(tp, "dist", fd)
    monkeypatch.setattr(comms, "dist", fd)
    ctx = object.__new__(Ctx)
    ctx.backend, ctx.device, ctx.rank, ctx.world = "fake", "meta", 0, 1    # "meta": a device that is not the CPU
    ctx.max_over_ranks = lambda v: v
    rows = tp.tp_layer_rows(ctx, [64], io.StringIO(), head_dim=16, prompt=4)
    assert fd.devices and set(fd.devices) == {"meta"}                  # were "cpu": NCCL refuses those
    assert len(rows) == 2
    with pytest.raises(AssertionError, match="device is cuda:1"):
        ctx.device = "cuda:1"
        ctx.check(torch.ones(1))


# 10: an NVIDIA GPU with a torch that cannot use it stops with one line; auto says what it chose and why.
def test_device_auto_refuses_gpu_box_without_cuda_and_explains_its_choice(monkeypatch):
    from bench.devices.select import get_device
    from bench.devices.select import choose_auto, nvidia_gpus
    gpu = ["GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-0b42632a)"]
    with pytest.raises(ValueError, match="CPU-only build") as e:
        choose_auto(False, None, "2.13.0+cpu", gpus=gpu)
    assert "\n" not in str(e.value) and "TORCH" in str(e.value)
    with pytest.raises(ValueError, match="built for CUDA 13.0, cannot use it"):
        choose_auto(False, "13.0", "2.13.0", gpus=gpu)
    assert choose_auto(False, None, "2.13.0", gpus=[]) == ("cpu", "no NVIDIA GPU on this machine")
    assert choose_auto(True, "12.6", "2.13.0")[0] == "cuda"
    assert nvidia_gpus("/nonexistent", smi=None) == []
    from bench.cli import main
    with pytest.raises(ValueError, match="--gpus needs CUDA"):
        main(["run", "--device", "cpu", "--gpus", "0"])
    with pytest.raises(ValueError, match="distinct"):
        main(["run", "--gpus", "0,0"])
    monkeypatch.delenv(fake.ENV, raising=False)
    log = io.StringIO()
    if not torch.cuda.is_available() and not nvidia_gpus():
        assert get_device("auto", log=log).kind == "cpu"
        assert log.getvalue().startswith("--device auto: cpu (")
        with pytest.raises(ValueError, match="torch sees no CUDA device"):
            get_device("cuda")


def test_make_install_reinstalls_when_torch_changes(tmp_path):
    venv = tmp_path / "venv"
    venv.mkdir()
    (venv / ".torch-spec").write_text("torch==2.13.0 \n")
    (venv / ".installed").touch()
    make = lambda *a: subprocess.run(["make", "-C", str(ROOT), "install", f"VENV={venv}", "PYTHON=false", *a],
                                     capture_output=True, text=True, timeout=60)
    assert make().returncode == 0                                       # same TORCH: nothing to do
    r = make("TORCH=torch==2.12.0")
    assert r.returncode != 0 and "false -m venv" in r.stdout            # tried to rebuild the venv
    assert (venv / ".torch-spec").read_text() == "torch==2.12.0 \n"


# 12: exact names and memory, never substrings.
def test_datasheet_by_exact_name_and_memory():
    from analysis.load import datasheet_for
    from theory.devices import device_table, match_device
    from theory.hardware import hardware_presets
    gib = 2**30
    assert datasheet_for("NVIDIA L40", "cuda", 45 * gib) is None                  # was l4
    assert datasheet_for("NVIDIA GH200 480GB", "cuda", 95 * gib) is None          # was h200
    assert datasheet_for("NVIDIA H100 NVL", "cuda", 94 * gib) is None             # was h100-sxm-80gb
    assert datasheet_for("NVIDIA H100 80GB HBM3", "cuda", int(79.6 * gib)).id == "h100-sxm-80gb"
    assert datasheet_for("NVIDIA A100-SXM4-40GB", "cuda", int(39.4 * gib)).id == "a100-sxm-40gb"
    assert datasheet_for("Tesla T4", "cuda", 15 * gib).id == "t4"
    assert match_device("NVIDIA H100 80GB HBM3", 40 * gib)[0] is None             # memory disagrees
    assert "MIG" in match_device("NVIDIA H100 80GB HBM3 MIG 1g.10gb", 10 * gib)[1]
    assert datasheet_for("NVIDIA H100 80GB HBM3", "cpu") is None
    presets = hardware_presets()
    for d in device_table()[0]:
        assert d["hardware"] is None or d["hardware"] in presets, d
        assert d["source"]


def test_nccl_setup_binds_each_rank_to_its_gpu(monkeypatch):
    from bench.comms import Ctx, setup_backend

    class InitRecorder(FakeDist):
        def init_process_group(self, backend, **kw):
            self.init = (backend, kw)

        def barrier(self, device_ids=None):
            self.barrier_ids = device_ids
    monkeypatch.delenv("TORCH_NCCL_BLOCKING_WAIT", raising=False)
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)
    cuda, fd = fake.FakeCuda(2), InitRecorder()
    assert setup_backend("auto", 1, 30.0, cuda=cuda, dist_mod=fd) == ("nccl", "cuda:1")
    backend, kw = fd.init
    assert backend == "nccl" and kw["device_id"] == torch.device("cuda", 1) and kw["timeout"].total_seconds() == 30
    # Never blocking wait: with it every Work.wait() sleep-polls (≥ 1 ms per timed collective)
    assert cuda.current == 1 and "TORCH_NCCL_BLOCKING_WAIT" not in os.environ
    import bench.comms as comms
    monkeypatch.setattr(comms, "dist", fd)
    ctx = object.__new__(Ctx)
    ctx.backend, ctx.device, ctx.rank, ctx.world = "nccl", "cuda:1", 1, 2
    ctx.cuda = cuda
    ctx.barrier()
    ctx.sync()                                  # spins on an event recorded on the device
    assert fd.barrier_ids == [1]
    fd2 = InitRecorder()
    assert setup_backend("gloo", 0, 30.0, cuda=cuda, dist_mod=fd2) == ("gloo", "cpu")
    assert "device_id" not in fd2.init[1]


def test_kv_flag_reads_allocator_factors_on_cuda_only():
    from analysis.flags import kv_flags
    rows = synthetic_cuda_kv_rows()
    cuda = kv_flags(rows, "cuda")[0][0]["message"]
    assert "allocator rounding 1.50" in cuda and "reserved memory grows 6.00x" in cuda
    assert "no reserved pool" in kv_flags(rows, "cpu")[0][0]["message"]


# 8: the ceilings child of an isolated CUDA run; its failure is one line, and the parent's view holds nothing.
def test_ceilings_child_failure_is_one_line_and_parent_view_touches_no_gpu(tmp_path, monkeypatch):
    import bench.launch.child as child
    from bench.devices.parent import ParentCuda
    cuda = fake.FakeCuda(2)
    with pytest.raises(ValueError, match="this process sees 2 GPU"):
        ParentCuda(2, cuda=cuda)
    parent = ParentCuda(1, cuda=cuda)
    assert parent.kind == "cuda" and parent.name() == "CUDA GPU 1"
    with pytest.raises(RuntimeError, match="before probe"):
        parent.info()
    seen = {}

    def failing_child(cmd, **kw):
        seen.update(cmd=cmd, env=kw["env"])
        return subprocess.CompletedProcess(cmd, 1, None, "Traceback ...\ntorch.OutOfMemoryError: CUDA out of memory\n")
    monkeypatch.setattr(child.subprocess, "run", failing_child)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    with pytest.raises(ValueError, match=r"ceilings on GPU 1 failed in its child process: torch.OutOfMemoryError") as e:
        child.probe_ceilings(parent, tmp_path, ["bf16", "fp16"], io.StringIO())
    assert "\n" not in str(e.value)
    assert seen["cmd"][-4:] == ["_ceilings", str(tmp_path / ".ceilings-gpu1.json"), "1", "bf16,fp16"]
    assert seen["env"]["CUDA_VISIBLE_DEVICES"] == "1"                  # pinned like the point children
    assert cuda.log == []                                               # no CUDA call of any kind


# Second reading: torch's set_sync_debug_mode warns once that the mode "does not yet detect all synchronizing
# operations" (torch/csrc/cuda/Module.cpp, TORCH_WARN_ONCE); that notice is not a hidden synchronisation.
def test_hidden_syncs_count_only_torch_sync_warnings(standin, monkeypatch):
    import warnings
    import bench.timing.trajectory as trajectory_mod
    from bench.profiling.syncs import count_hidden_syncs
    from bench.sweep import Point

    def trajectory(*a, **k):
        for _ in range(2):
            warnings.warn("called a synchronizing CUDA operation", UserWarning)
    monkeypatch.setattr(trajectory_mod, "run_trajectory", trajectory)
    p = Point(hidden_size=32, num_hidden_layers=1, head_dim=16, vocab_size=256, generated=3)
    assert count_hidden_syncs(None, standin, None, p.generated, p.cache, p.max_cache_len) == 2   # was 3: the prototype notice counted too
    assert standin.cuda.sync_debug_mode == 0


def test_missing_gpu_is_refused_before_any_ceilings(tmp_path, monkeypatch):
    """`--gpus 0,3` on a box with two GPUs: refused (one line, by bench.cli's run_main) before a run directory or
    a ceilings child exists (was: refused after GPU 0's ceilings had been measured)."""
    from bench.cli import main
    import bench.run.ceilings as ceilings
    monkeypatch.setenv(fake.ENV, "2")
    monkeypatch.setattr(ceilings, "probe_ceilings", lambda *a, **k: pytest.fail("ceilings measured before refusing"))
    sweep = tmp_path / "s.json"
    sweep.write_text(json.dumps(TINY))
    with pytest.raises(ValueError, match=r"sees 2 GPU\(s\), no index 3"):
        main(["run", "--sweep", str(sweep), "--gpus", "0,3", "--out", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()
