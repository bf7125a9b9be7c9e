"""Which wheel index gives a torch build this machine's NVIDIA driver can run (stdlib only: runs before .venv exists).

`make install` calls it on a GPU box when neither TORCH_INDEX is given nor a venv records one. It prints the index URL
(nothing: PyPI's default build is right, or no GPU) and says why on stderr in one line.

Source for the builds: PyTorch's RELEASE.md, "Release Compatibility Matrix" — torch 2.13 ships stable CUDA 12.6 and
13.0 builds (13.2 experimental), and PyPI's default Linux x86-64 wheel is the CUDA 13.0 one. A CUDA 13.x build needs
a driver that reports CUDA 13.0 or newer (R580+); a 12.x build runs on any driver reporting 12.x (minor-version
compatibility, R525+). nvidia-smi's header states the newest CUDA the driver supports ("CUDA Version: 12.4").
"""
import re
import shutil
import subprocess
import sys

PYTORCH_INDEX = "https://download.pytorch.org/whl/"
# torch minor version -> its CUDA builds (major, minor) and which one PyPI's default wheel is.
BUILDS = {"2.13": ([(12, 6), (13, 0)], (13, 0)), "2.12": ([(12, 6), (13, 0)], (13, 0))}


def driver_cuda(smi_output: str) -> tuple[int, int] | None:
    """The newest CUDA the driver supports, from `nvidia-smi`'s header; None if it does not say."""
    m = re.search(r"CUDA Version:\s*(\d+)\.(\d+)", smi_output)
    return (int(m.group(1)), int(m.group(2))) if m else None


def pick(torch_req: str, cuda: tuple[int, int] | None) -> tuple[str, str]:
    """(index URL or "" for PyPI's default, one line saying why) for a requirement such as torch==2.13.0."""
    m = re.search(r"==\s*(\d+)\.(\d+)", torch_req)
    minor = f"{m.group(1)}.{m.group(2)}" if m else None
    if cuda is None:
        return "", "nvidia-smi states no CUDA version: keeping PyPI's default torch build"
    if minor not in BUILDS:
        return "", f"no CUDA build table for {torch_req!r}: keeping PyPI's default (set TORCH_INDEX to choose)"
    builds, default = BUILDS[minor]
    # Minor-version compatibility (CUDA 12 and 13): a build runs on any driver of its major version or newer.
    ok = [b for b in builds if b[0] <= cuda[0]]
    have = f"{cuda[0]}.{cuda[1]}"
    if not ok:
        return "", (f"the driver supports CUDA {have}, older than every torch {minor} build "
                    f"({', '.join(f'{a}.{b}' for a, b in builds)}): update the driver (torch will not see the GPU)")
    best = max(ok)
    if best == default:
        return "", f"the driver supports CUDA {have}: PyPI's default torch {minor} build (CUDA {best[0]}.{best[1]})"
    url = f"{PYTORCH_INDEX}cu{best[0]}{best[1]}"
    return url, f"the driver supports CUDA {have}: torch {minor}'s CUDA {best[0]}.{best[1]} build from {url}"


def main(argv: list[str]) -> int:
    torch_req = argv[1] if len(argv) > 1 else "torch==2.13.0"
    exe = shutil.which("nvidia-smi")
    if not exe:
        return 0
    try:
        out = subprocess.run([exe], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    url, why = pick(torch_req, driver_cuda(out))
    print(f"torch wheel: {why}", file=sys.stderr)
    print(url)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
