"""Run metadata captured automatically: versions, commit, host, device, threads."""
import os
import platform
import socket
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

SCHEMA_VERSION = 1
ROOT = Path(__file__).resolve().parent.parent


def git_state() -> dict:
    def git(*args):
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return ""
    commit = git("rev-parse", "HEAD")
    dirty = bool(git("status", "--porcelain", "--untracked-files=no")) if commit else None
    return {"git_commit": commit or None, "git_dirty": dirty}


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def run_metadata(device) -> dict:
    import torch
    import transformers
    meta = {
        "schema_version": SCHEMA_VERSION, "utc_time": utc_now(), "host": socket.gethostname(),
        "platform": platform.platform(), "python": sys.version.split()[0], "torch": torch.__version__,
        "transformers": transformers.__version__, "torch_threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        **git_state(), **device.info(),
    }
    meta["device"] = device.kind
    return meta
