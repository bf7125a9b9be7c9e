"""`make install` on a GPU box: the torch build the driver can run, picked by itself; a changed TORCH_INDEX really
replaces torch; a plain make afterwards changes nothing. Proven with a fake nvidia-smi and file-based wheel indexes."""
import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import torch_index  # noqa: E402

HEADER = ("| NVIDIA-SMI 550.54.15    Driver Version: 550.54.15    CUDA Version: {} |\n"
          "|  0  NVIDIA H100 80GB HBM3   On  |\n")


def test_driver_cuda_read_from_the_header():
    assert torch_index.driver_cuda(HEADER.format("12.4")) == (12, 4)
    assert torch_index.driver_cuda("no header") is None


def test_pick_matches_the_builds_to_the_driver():
    url, why = torch_index.pick("torch==2.13.0", (12, 4))
    assert url == "https://download.pytorch.org/whl/cu126" and "12.4" in why
    assert torch_index.pick("torch==2.13.0", (13, 0))[0] == ""          # PyPI's default is the CUDA 13.0 build
    assert torch_index.pick("torch==2.13.0", (13, 2))[0] == ""
    url, why = torch_index.pick("torch==2.13.0", (11, 8))
    assert url == "" and "update the driver" in why
    assert "TORCH_INDEX" in torch_index.pick("torch==2.99.0", (12, 4))[1]


def fake_smi(tmp_path, cuda):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    smi = bin_dir / "nvidia-smi"
    smi.write_text("#!/bin/sh\n[ \"$1\" = -L ] && { echo 'GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-x)'; exit 0; }\n"
                   f"cat <<'E'\n{HEADER.format(cuda)}E\n")
    smi.chmod(0o755)
    return bin_dir


def test_index_script_reads_a_fake_nvidia_smi(tmp_path):
    env = dict(os.environ, PATH=f"{fake_smi(tmp_path, '12.4')}:{os.environ['PATH']}")
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "torch_index.py"), "torch==2.13.0"],
                       capture_output=True, text=True, env=env, timeout=30)
    assert r.stdout.strip() == "https://download.pytorch.org/whl/cu126"
    assert r.stderr.count("\n") == 1 and "CUDA 12.4" in r.stderr


def fake_index(root: Path, build: str) -> str:
    """A PEP 503 index on disk holding one pure-Python 'torch 2.13.0' whose module says which build it is."""
    pkg = root / "torch"
    pkg.mkdir(parents=True)
    name = "torch-2.13.0-py3-none-any.whl"
    info = "torch-2.13.0.dist-info"
    with zipfile.ZipFile(pkg / name, "w") as z:
        z.writestr("torch/__init__.py", f"BUILD = {build!r}\n")
        z.writestr(f"{info}/METADATA", "Metadata-Version: 2.1\nName: torch\nVersion: 2.13.0\n")
        z.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr(f"{info}/RECORD", f"torch/__init__.py,,\n{info}/METADATA,,\n{info}/WHEEL,,\n{info}/RECORD,,\n")
    (pkg / "index.html").write_text(f'<html><body><a href="{name}">{name}</a></body></html>\n')
    return root.as_uri()


def test_changed_index_replaces_torch_and_a_plain_make_keeps_it(tmp_path):
    a, b = fake_index(tmp_path / "a", "a"), fake_index(tmp_path / "b", "b")
    venv = tmp_path / "venv"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull                                  # only the fake indexes, no local wheels

    def make(*args, check=True):
        r = subprocess.run(["make", "-C", str(ROOT), f"VENV={venv}", "PROJECT=", *args],
                           capture_output=True, text=True, env=env, timeout=300)
        assert not check or r.returncode == 0, r.stdout + r.stderr
        return r

    def build():
        return subprocess.run([str(venv / "bin" / "python"), "-c", "import torch; print(torch.BUILD)"],
                              capture_output=True, text=True, timeout=60).stdout.strip()

    make("install", f"TORCH_INDEX={a}")
    assert build() == "a"
    r = make("install", f"TORCH_INDEX={b}")
    assert build() == "b" and "replacing the installed build" in r.stdout
    assert make("-q", "install", check=False).returncode == 0             # plain make: up to date, torch kept
    assert (venv / ".torch-spec").read_text() == f"torch==2.13.0 {b}\n"
