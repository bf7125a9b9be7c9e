"""Files on disk: a write lands whole or not at all (a temporary file beside it, then a rename)."""
import csv
import io
import json
import os
import tempfile
from pathlib import Path

from bench.store.signals import critical


def atomic_write(path: Path, text: str) -> None:
    """Write a uniquely named temporary file beside `path`, then rename it over `path`: two writers never share
    a temporary file, a failed write leaves nothing behind, and SIGTERM waits for the rename (bench.store.signals)."""
    path = Path(path)
    with critical():
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            os.fchmod(fd, 0o644)
            with open(fd, "w") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise


def csv_text(rows: list[dict], columns: list[str]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, extrasaction="raise", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: "" if r.get(k) is None else r.get(k) for k in columns})
    return buf.getvalue()


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def write_json(path: Path, obj) -> None:
    atomic_write(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")
