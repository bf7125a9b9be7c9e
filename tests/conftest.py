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
    from bench.devices.cpu import CpuDevice
    from bench.run.execute import execute
    from bench.run.create import start_run
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


@pytest.fixture
def run_copy(tiny_run, tmp_path):
    """A private copy of the shared tiny run, free to damage."""
    import shutil
    dst = tmp_path / tiny_run.name
    shutil.copytree(tiny_run, dst)
    return dst


def synthetic_cuda_kv_rows():
    """The seed's model (d=1024, L=8, fp32, MHA) as CUDA rows with a known answer: a cat-copying cache peaks at 2x
    its tensors and the allocator reserves 1.5x the peak growth, so bytes per token grow 2·1·2·1.5 = 6x naive."""
    import numpy as np
    import pandas as pd
    L, d, tokens = 8, 1024, np.arange(33, 233)
    per_token = 2 * L * d * 4
    return pd.DataFrame({
        "point_id": "syn", "phase": "decode", "cache": "dynamic", "dtype": "fp32", "batch": 1,
        "num_hidden_layers": L, "hidden_size": d, "num_key_value_heads": 8, "head_dim": 128,
        "context_len": tokens - 1, "kv_cache_bytes": tokens * per_token,
        "mem_allocated_peak_total_bytes": 10**8 + 2 * tokens * per_token,
        "mem_reserved_peak_total_bytes": 2 * 10**8 + 3 * tokens * per_token,
        "rss_peak_bytes": np.nan,
    })
