"""Is there an NVIDIA GPU that this torch cannot use? `--device auto` must never benchmark the CPU of a GPU box
by accident: it says what it chose and why, and stops with one line when the GPU is there but CUDA is not."""
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
