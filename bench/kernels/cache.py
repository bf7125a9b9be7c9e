"""Kernel times per box: a CSV keyed by (device name, torch version, threads, dtype), so runs share shapes
already measured. A run's own kernels.csv records, per kernel, whether it was measured now or reused."""
import csv
import re
import time
from dataclasses import asdict, fields
from pathlib import Path

from bench.kernels.microbench import KernelTime, time_kernel
from bench.kernels.shapes import Kernel
from bench.records import atomic_write, csv_text

KERNEL_COLUMNS = ["kernel_id", "op", "impl", "dtype", "shape", "cache_state_wanted"] + \
    [f.name for f in fields(KernelTime)] + ["measured_utc", "source"]


def kernel_id(k: Kernel, cache_state: str) -> str:
    return f"{k.op}|{k.impl}|{k.dtype}|{k.shape_text()}|{cache_state}"


def box_key(device_name: str, torch_version: str, threads: int, dtype: str) -> str:
    text = f"{device_name}-torch{torch_version}-t{threads}-{dtype}"
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", text).strip("_")


class KernelCache:
    """In memory for a run; persisted per box and dtype under `root` (None: in memory only)."""

    def __init__(self, root: Path | None, device, llc_bytes: int | None, budget_s: float = 0.06):
        import torch
        self.root, self.device, self.llc_bytes, self.budget_s = root, device, llc_bytes, budget_s
        self.fits_bytes = llc_bytes        # what a model's working set must fit to run cached (effective LLC)
        self.torch_version = torch.__version__
        self.rows: dict[str, dict] = {}
        self.loaded: set[str] = set()
        self.measured_s = 0.0

    def _path(self, dtype: str) -> Path | None:
        if self.root is None:
            return None
        return self.root / f"{box_key(self.device.name(), self.torch_version, self.device.threads, dtype)}.csv"

    def _load(self, dtype: str) -> None:
        if dtype in self.loaded:
            return
        self.loaded.add(dtype)
        path = self._path(dtype)
        if path is not None and path.exists():
            with open(path, newline="") as f:
                for r in csv.DictReader(f):
                    self.rows.setdefault(r["kernel_id"], {**r, "source": "cache"})

    def get(self, k: Kernel, cache_state: str) -> dict:
        """The kernel's row (median_s etc. as floats), measuring it if no run on this box has."""
        self._load(k.dtype)
        kid = kernel_id(k, cache_state)
        if kid not in self.rows:
            t0 = time.perf_counter()
            kt = time_kernel(k, self.device, cache_state, self.llc_bytes, self.budget_s)
            self.measured_s += time.perf_counter() - t0
            self.rows[kid] = {"kernel_id": kid, "op": k.op, "impl": k.impl, "dtype": k.dtype, "shape": k.shape_text(),
                              "cache_state_wanted": cache_state, **asdict(kt),
                              "measured_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "source": "measured"}
            self._save(k.dtype)
        return self.rows[kid]

    def _save(self, dtype: str) -> None:
        path = self._path(dtype)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        rows = [r for r in self.rows.values() if r["dtype"] == dtype]
        atomic_write(path, csv_text([{**r, "source": "measured"} for r in rows], KERNEL_COLUMNS))
