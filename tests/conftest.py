"""One tiny real CPU run shared by the bench, profile and analysis tests (keeps `make test` fast)."""
import json
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

TINY_SWEEP = {
    "name": "tiny",
    "description": "test fixture: tiny models over every axis",
    "repeats": 3,
    "warmup_s": 0.05,
    "defaults": {"hidden_size": 64, "num_hidden_layers": 2, "head_dim": 16, "kv_group": 2, "vocab_size": 256,
                 "batch": 1, "prompt_len": 8, "generated": 5},
    "grids": [
        {"axes": {"hidden_size": [32, 64, 128]}},
        {"axes": {"num_hidden_layers": [1, 3]}},
        {"axes": {"batch": [2]}},
        {"axes": {"attention": ["sdpa", "eager"], "cache": ["dynamic", "static"]}},
    ],
}


def has_cuda() -> bool:
    try:
        import torch
        return torch.cuda.is_available()
    except ImportError:
        return False


def pytest_collection_modifyitems(config, items):
    if has_cuda():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


def subprocess_env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="session")
def tiny_sweep_file(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("sweeps") / "tiny.json"
    p.write_text(json.dumps(TINY_SWEEP, indent=1))
    return p


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_sweep_file) -> Path:
    from bench.device import CpuDevice
    from bench.runner import execute, start_run
    from bench.sweep import load_sweep
    device = CpuDevice(threads=1)
    sweep, path = load_sweep(str(tiny_sweep_file), "cpu")
    out = tmp_path_factory.mktemp("results")
    with open(os.devnull, "w") as quiet:
        run_dir = start_run(sweep, path, device, out, log=quiet)
        execute(run_dir, sweep, device, log=quiet)
    return run_dir


def the_run(out: Path) -> Path:
    """The one run directory under an --out root (the per-box kernel cache lives beside it)."""
    runs = [d for d in out.iterdir() if d.is_dir() and d.name != "kernel-cache"]
    assert len(runs) == 1, runs
    return runs[0]
