"""Allocation traces on disk (bench/profiling/alloctrace.py records them): one CSV per point under points/, and the
run's alloc_trace.csv.gz assembled from them in sweep order. File operations only: no torch."""
import csv
import gzip
import os
import tempfile
from pathlib import Path

from bench.store.files import csv_text

TRACE_COLUMNS = ["point_id", "phase", "step", "event_index", "action", "size_bytes", "addr_id"]


def trace_text(rows: list[dict]) -> str:
    return csv_text(rows, TRACE_COLUMNS)


RUN_TRACE = "alloc_trace.csv.gz"      # the run's traces, points in sweep order; gzip without a timestamp: reruns match


def assemble_traces(run_dir: Path, point_ids: list[str]) -> Path | None:
    parts = [run_dir / "points" / f"{pid}.alloc_trace.csv" for pid in point_ids]
    parts = [f for f in parts if f.exists()]
    if not parts:
        return None
    text = parts[0].read_text().splitlines(keepends=True)[0] + "".join(
        "".join(f.read_text().splitlines(keepends=True)[1:]) for f in parts)
    out = run_dir / RUN_TRACE
    fd, tmp = tempfile.mkstemp(dir=run_dir, prefix=f".{RUN_TRACE}.", suffix=".tmp")
    with os.fdopen(fd, "wb") as f:
        f.write(gzip.compress(text.encode(), mtime=0))
    os.chmod(tmp, 0o644)
    os.replace(tmp, out)
    return out


def read_trace(path: Path) -> list[dict]:
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", newline="") as f:
        return [{**r, "step": int(r["step"]), "event_index": int(r["event_index"]), "size_bytes": int(r["size_bytes"]),
                 "addr_id": int(r["addr_id"])} for r in csv.DictReader(f)]
