"""Kernel times per box: a CSV keyed by (device name, torch version, threads, dtype), so runs share shapes
already measured. A cache file is reused only after a few sentinel kernels, timed again, agree with it
(validate.py); otherwise its rows are ignored for this run and the file is rewritten with the fresh ones.
A run's own kernels.csv records, per kernel, whether it was measured now or reused (`source`) and the check
(`cache_check`)."""
import csv
import fcntl
import math
import re
import sys
import time
from dataclasses import asdict, fields
from pathlib import Path

from bench.kernels.microbench import KernelTime, time_kernel
from bench.kernels.shapes import Kernel
from bench.kernels.validate import (check_line, check_text, damaged, pick_sentinels, sentinel_record, unchecked,
                                    verdict)
from bench.store.files import atomic_write, csv_text

KERNEL_COLUMNS = ["kernel_id", "op", "impl", "dtype", "shape", "cache_state_wanted"] + \
    [f.name for f in fields(KernelTime)] + ["measured_utc", "source", "cache_check"]


def kernel_id(k: Kernel, cache_state: str) -> str:
    return f"{k.op}|{k.impl}|{k.dtype}|{k.shape_text()}|{cache_state}"


def kernel_row(k: Kernel, cache_state: str, kt: KernelTime, source: str, cache_check: str) -> dict:
    """One row of kernels.csv (KERNEL_COLUMNS)."""
    return {"kernel_id": kernel_id(k, cache_state), "op": k.op, "impl": k.impl, "dtype": k.dtype,
            "shape": k.shape_text(), "cache_state_wanted": cache_state, **asdict(kt),
            "measured_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "source": source,
            "cache_check": cache_check}


TIME_COLUMNS = ("median_s", "ci_low_s", "ci_high_s")


def read_cache_file(path: Path) -> tuple[dict[str, dict], str | None]:
    """The file's rows by kernel id, or ({}, why) when it cannot be a cache this code wrote: not UTF-8 text, not a
    CSV, a column of KERNEL_COLUMNS missing, a short row, or a time that is not a positive finite number."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            missing = [c for c in KERNEL_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                return {}, f"no {missing[0]} column"
            rows = {}
            for r in reader:
                if None in r.values() or None in r:
                    return {}, f"line {reader.line_num} has {'fewer' if None in r.values() else 'more'} fields than the header"
                for c in TIME_COLUMNS:
                    try:
                        ok = 0 < float(r[c]) < math.inf
                    except ValueError:
                        ok = False
                    if not ok:
                        return {}, f"line {reader.line_num}: {c} {r[c]!r} is not a positive time"
                rows[r["kernel_id"]] = r
    except UnicodeDecodeError as e:
        return {}, f"not UTF-8 text (byte {e.start})"
    except csv.Error as e:
        return {}, f"not a CSV ({e})"
    return rows, None


def box_key(device_name: str, torch_version: str, threads: int, dtype: str) -> str:
    text = f"{device_name}-torch{torch_version}-t{threads}-{dtype}"
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", text).strip("_")


class KernelCache:
    """In memory for a run; persisted per box and dtype under `root` (None: in memory only)."""

    def __init__(self, root: Path | None, device, llc_bytes: int | None, budget_s: float = 0.06, log=None):
        import torch
        self.root, self.device, self.llc_bytes, self.budget_s = root, device, llc_bytes, budget_s
        self.log = log                     # where the one-line verdicts go (None: stderr)
        self.fits_bytes = llc_bytes        # what a model's working set must fit to run cached (effective LLC)
        self.torch_version = torch.__version__
        self.rows: dict[str, dict] = {}              # the kernels this run used (reused or measured now)
        self.cached: dict[str, dict[str, dict]] = {}  # dtype -> the cache file's rows, until checked or ignored
        self.checks: dict[str, dict] = {}            # dtype -> the sentinel check (validate.verdict)
        self.wanted: dict[str, tuple] = {}           # kernel id -> (kernel, cache state) the run said it needs
        self.measured_s = 0.0

    def _path(self, dtype: str) -> Path | None:
        if self.root is None:
            return None
        return self.root / f"{box_key(self.device.name(), self.torch_version, self.device.threads, dtype)}.csv"

    def _load(self, dtype: str) -> None:
        if dtype in self.cached:
            return
        path = self._path(dtype)
        rows, why = read_cache_file(path) if path is not None and path.exists() else ({}, None)
        self.cached[dtype] = rows
        self.checks[dtype] = unchecked(str(path) if path else "", len(rows))
        if why is not None:                          # damaged: said once, ignored, and rewritten from this run
            self.checks[dtype] = damaged(str(path), why)
            self._say(check_line(self.checks[dtype]))
            self._save(dtype)

    def _say(self, line: str) -> None:
        print(line, file=self.log or sys.stderr, flush=True)

    def need(self, kernels: list[tuple[Kernel, str]], check: bool = True) -> None:
        """The kernels (with their cache state) a pass or point will ask for: sentinels are drawn from these.
        check=False only registers them (more needs follow before the first kernel is asked for)."""
        for k, state in kernels:
            self.wanted.setdefault(kernel_id(k, state), (k, state))
        for dtype in {k.dtype for k, _ in kernels}:
            self._load(dtype)
            if check:
                self._check(dtype)

    def _check(self, dtype: str, also: dict | None = None) -> None:
        """Re-time the sentinels once per dtype, as soon as the run needs a kernel the cache holds."""
        check, cached = self.checks[dtype], self.cached[dtype]
        if check["validated"] is not None or not cached:
            return
        candidates = {kid: v for kid, v in {**self.wanted, **(also or {})}.items()
                      if kid in cached and v[0].dtype == dtype}
        if not candidates:
            return
        fresh, sentinels = {}, []
        for kid in pick_sentinels(candidates, cached):
            k, state = candidates[kid]
            fresh[kid] = self._measure(k, state)
            sentinels.append(sentinel_record(kid, k, cached[kid], float(fresh[kid]["median_s"])))
        check = self.checks[dtype] = verdict(check["file"], len(cached), sentinels, len(candidates))
        self._say(check_line(check))
        if not check["validated"]:
            self.cached[dtype] = {}                  # ignored for this run; the sentinels' fresh times are kept
            self.rows.update(fresh)
        for r in self.rows.values():
            if r["dtype"] == dtype:
                r["cache_check"] = check_text(check)
        if not check["validated"]:
            self._save(dtype)

    def get(self, k: Kernel, cache_state: str) -> dict:
        """The kernel's row (median_s etc. as floats), measuring it if no run on this box has (or the cache failed
        its check)."""
        self._load(k.dtype)
        kid = kernel_id(k, cache_state)
        if kid in self.rows:
            return self.rows[kid]
        if kid in self.cached[k.dtype]:
            self._check(k.dtype, {kid: (k, cache_state)})
            if kid in self.rows:                     # a sentinel of a stale cache: its fresh time is the row
                return self.rows[kid]
        check = self.checks[k.dtype]
        if kid in self.cached[k.dtype] and check["validated"]:
            self.rows[kid] = {**self.cached[k.dtype][kid], "source": "cache", "cache_check": check_text(check)}
            return self.rows[kid]
        self.rows[kid] = self._measure(k, cache_state)
        self._save(k.dtype)
        return self.rows[kid]

    def _measure(self, k: Kernel, cache_state: str) -> dict:
        t0 = time.perf_counter()
        kt = time_kernel(k, self.device, cache_state, self.llc_bytes, self.budget_s)
        self.measured_s += time.perf_counter() - t0
        return kernel_row(k, cache_state, kt, "measured", check_text(self.checks[k.dtype]))

    def _save(self, dtype: str) -> None:
        """The file: what the cache held and still holds (validated, or not yet checked), plus this run's rows.
        Several processes write one box's file (a --gpus run's children, bench/launch/parallel.py): under an
        exclusive lock the file is read again and merged, so a row another process added meanwhile stays; a cache
        that failed its check is rewritten with this process's rows only."""
        path = self._path(dtype)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_name(path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)           # released when the file closes
            disk = {}
            if path.exists() and self.checks.get(dtype, {}).get("validated") is not False:
                disk, _ = read_cache_file(path)        # a damaged file contributes nothing and is rewritten
            rows = {**disk, **self.cached.get(dtype, {}),
                    **{kid: r for kid, r in self.rows.items() if r["dtype"] == dtype}}
            atomic_write(path, csv_text([{**r, "source": "measured", "cache_check": ""} for r in rows.values()],
                                        KERNEL_COLUMNS))

    def report(self) -> dict:
        """Per dtype, the sentinel check this process made (run.json `kernel_cache`)."""
        return dict(self.checks)
