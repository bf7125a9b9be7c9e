"""Which device a run measures on: the only file that knows every device class.

`--device auto` must never benchmark the CPU of a GPU box by accident: it says what it chose and why, and stops
with one line when an NVIDIA GPU is there but this torch cannot use it."""
import os
import shutil
import subprocess

FIX = ("install a torch built for a CUDA your driver supports (the version `nvidia-smi` shows, or older): "
       "`make install TORCH_INDEX=https://download.pytorch.org/whl/cu<XYZ>` (README: On a GPU box), or pass "
       "--device cpu to measure the CPU on purpose")


def nvidia_gpus(proc_dir: str = "/proc/driver/nvidia/gpus", smi: str | None = "nvidia-smi") -> list[str]:
    """GPUs the NVIDIA driver lists: `nvidia-smi -L` lines, else one entry per /proc/driver/nvidia/gpus/*."""
    exe = shutil.which(smi) if smi else None
    if exe:
        try:
            out = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=20).stdout
            lines = [ln.strip() for ln in out.splitlines() if ln.strip().startswith("GPU ")]
            if lines:
                return lines
        except (OSError, subprocess.SubprocessError):
            pass
    try:
        return sorted(os.listdir(proc_dir))
    except OSError:
        return []


def choose_auto(cuda_available: bool, torch_cuda: str | None, torch_version: str, gpus=None) -> tuple[str, str]:
    """(device kind, why) for `--device auto`; ValueError (one line) when a GPU is present but unusable."""
    if cuda_available:
        return "cuda", f"torch {torch_version} sees CUDA {torch_cuda}"
    gpus = nvidia_gpus() if gpus is None else gpus
    if not gpus:
        return "cpu", "no NVIDIA GPU on this machine"
    which = gpus[0] if len(gpus) == 1 else f"{len(gpus)} GPUs, first: {gpus[0]}"
    if torch_cuda is None:
        raise ValueError(f"an NVIDIA GPU is present ({which}) but torch {torch_version} is a CPU-only build: {FIX}")
    raise ValueError(f"an NVIDIA GPU is present ({which}) but torch {torch_version}, built for CUDA {torch_cuda}, "
                     f"cannot use it (driver older than that CUDA? check `nvidia-smi`): {FIX}")


def get_device(kind: str = "auto", threads: int = 1, index: int = 0, log=None, isolated: bool = False):
    """log: where `auto` says which device it chose and why (one line). isolated: this process only hands
    points to child processes; on CUDA it gets a view of the GPU that creates no context (bench/devices/parent.py)."""
    import torch
    from bench.devices import fake
    from bench.devices.cpu import CpuDevice
    from bench.devices.cuda import CudaDevice
    from bench.devices.parent import ParentCuda
    if fake.enabled() and kind in ("auto", "cuda"):          # test-only stand-in (see bench/devices/fake.py)
        if isolated:
            return ParentCuda(index, threads, cuda=fake.FakeCuda(fake.enabled()))
        return fake.standin_device(index, threads)
    if kind == "auto":
        kind, why = choose_auto(torch.cuda.is_available(), torch.version.cuda, torch.__version__)
        if log is not None:
            print(f"--device auto: {kind} ({why})", file=log, flush=True)
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("--device cuda asked for, but torch sees no CUDA device")
        return ParentCuda(index, threads) if isolated else CudaDevice(index=index, threads=threads)
    if kind != "cpu":
        raise ValueError(f"device must be cpu, cuda or auto, got {kind!r}")
    return CpuDevice(threads=threads)
