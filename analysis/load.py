"""Read a run directory: run.json, measurements.csv, samples.csv (and profile.csv when present)."""
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from analysis.validate import check_fields, check_times, read_side_csv
from theory.devices import match_device
from theory.errors import TheoryError
from theory.hardware import HardwareSpec, hardware_from_json, hardware_presets


@dataclass
class Run:
    path: Path
    meta: dict
    rows: pd.DataFrame          # every measured row, any status
    samples: pd.DataFrame
    profile: pd.DataFrame | None

    @property
    def ok(self) -> pd.DataFrame:
        return self.rows[self.rows["status"] == "ok"]

    @property
    def partial(self) -> bool:
        return self.rows["point_id"].nunique() < int(self.meta.get("points", 0))

    def box(self, box: str | None = None) -> dict:
        """The facts of the box that measured a row (run.json `boxes`: a merge of shards, a Ray run), else the
        run's own: a point is set against its own box's ceilings and datasheet."""
        entry = (self.meta.get("boxes") or {}).get(box) if isinstance(box, str) and box else None
        return entry or self.meta

    def ceilings(self, dtype: str, box: str | None = None) -> HardwareSpec | None:
        own = (self.box(box).get("ceilings") or {}).get(dtype)
        obj = own or self.meta.get("ceilings", {}).get(dtype)
        where = f"boxes.{box}.ceilings" if own else "ceilings"
        return None if obj is None else hardware_from_json(obj, f"{self.path}/run.json {where}.{dtype}")

    def ceilings_end(self, dtype: str, box: str | None = None) -> HardwareSpec | None:
        """The ceilings measured again at the end of the run (run.json `ceilings_end`, the detail), as the start's
        spec with its rates replaced the way bench/ceilings.py measure_ceilings builds one: peak = the best matmul
        shape, memory bandwidth = matrix-vector read, LLC bandwidth = the in-cache copy (where the start has one).
        None where the run (or the row's own box) has no end ceilings."""
        own = self.box(box)
        start, end = self.ceilings(dtype, box), (own.get("ceilings_end") or {}).get(dtype)
        if start is None or not isinstance(end, dict) or not end.get("matmul_flops_per_s_by_shape"):
            return None
        obj = {**start.to_json(), "peak_flops_per_s": {dtype: max(end["matmul_flops_per_s_by_shape"].values())},
               "memory_bandwidth_bytes_per_s": end["gemv_read_bytes_per_s"],
               "source": "measured by bench.ceilings at the end of this run"}
        if start.llc_bandwidth_bytes_per_s is not None and end.get("copy_bytes_per_s_in_cache"):
            obj["llc_bandwidth_bytes_per_s"] = end["copy_bytes_per_s_in_cache"]
        return hardware_from_json(obj, f"{self.path}/run.json ceilings_end.{dtype}")

    def datasheet(self, box: str | None = None) -> HardwareSpec | None:
        b = self.box(box)
        return datasheet_for(b.get("device_name") or "", b.get("device") or self.meta.get("device", "cpu"),
                             b.get("total_memory_bytes"))

    def datasheet_line(self) -> str:
        return datasheet_match(self.meta.get("device_name", ""), self.meta.get("device", "cpu"),
                               self.meta.get("total_memory_bytes"))[1]


def datasheet_for(device_name: str, device_kind: str, memory_bytes: int | None = None) -> HardwareSpec | None:
    """The preset for a CUDA device matched exactly by name and memory (theory.devices); CPUs have none."""
    hw_id = datasheet_match(device_name, device_kind, memory_bytes)[0]
    return None if hw_id is None else hardware_presets()[hw_id]


def datasheet_match(device_name: str, device_kind: str, memory_bytes: int | None = None) -> tuple[str | None, str]:
    if device_kind != "cuda":
        return None, "no datasheet: CPU specs come only from the measured ceilings"
    return match_device(device_name, memory_bytes)


def latest_run(results: Path = Path("results")) -> Path:
    runs = sorted((p for p in results.glob("*/run.json") if (p.parent / "measurements.csv").exists()),
                  key=lambda p: p.stat().st_mtime)
    if not runs:
        raise TheoryError(f"no run directory under {results}/ (run `make bench` first)")
    return runs[-1].parent


REQUIRED_COLUMNS = ["point_id", "phase", "step", "batch", "prompt_len", "context_len", "generated", "hidden_size",
                    "num_hidden_layers", "dtype", "attention", "cache", "time_s", "status", "message"]


def read_meta(path: Path) -> dict:
    """run.json, checked: one line naming the file and what is wrong, never a traceback."""
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise TheoryError(f"{path} is not valid JSON ({getattr(e, 'msg', e)}); the run's metadata is damaged") from None
    if not isinstance(meta, dict):
        raise TheoryError(f"{path}: expected a JSON object, got {type(meta).__name__}")
    if not isinstance(meta.get("ceilings"), dict) or not meta["ceilings"]:
        raise TheoryError(f"{path} has no ceilings (the run stopped before measuring them; "
                          f"`python -m bench resume {path.parent}` measures them)")
    return meta


def read_table(path: Path, required: list[str], dtype: dict) -> pd.DataFrame:
    try:
        df = pd.read_csv(path, dtype=dtype)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as e:
        raise TheoryError(f"{path} is not a readable CSV ({str(e).splitlines()[0][:120]})") from None
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise TheoryError(f"{path} lacks column(s) {', '.join(missing)}; not a {path.stem} file of this harness")
    return df


def latest_runs(n: int, results: Path = Path("results")) -> list[Path]:
    """The n most recent complete-enough runs (oldest first), e.g. two back-to-back `make bench` runs."""
    runs = sorted((p for p in results.glob("*/run.json") if (p.parent / "measurements.csv").exists()),
                  key=lambda p: p.stat().st_mtime)
    if len(runs) < n:
        raise TheoryError(f"need {n} runs under {results}/, found {len(runs)} (run `make bench` first)")
    return [p.parent for p in runs[-n:]]


def load_run(path: str | Path) -> Run:
    path = Path(path)
    if not (path / "run.json").exists():
        raise TheoryError(f"{path} is not a run directory (no run.json)")
    meta = read_meta(path / "run.json")
    mpath = path / "measurements.csv"
    if not mpath.exists():
        raise TheoryError(f"{path} has no measurements.csv yet (no point finished)")
    check_fields(mpath)
    rows = read_table(mpath, REQUIRED_COLUMNS, {"model": str, "message": str, "point_id": str})
    check_times(mpath, rows, where=rows["status"] == "ok")
    rows["model"] = rows["model"].fillna("")
    rows["box"] = rows["box"].astype(object).fillna("").astype(str) if "box" in rows else ""   # runs before per-box rows
    rows["execution"] = rows["execution"].fillna("eager") if "execution" in rows else "eager"   # runs before the axis
    spath = path / "samples.csv"
    if spath.exists():
        check_fields(spath)
        samples = read_table(spath, ["point_id", "phase", "step", "repeat", "time_s"], {"point_id": str})
        check_times(spath, samples)
    else:
        samples = pd.DataFrame(columns=["point_id", "phase", "step", "repeat", "time_s"])
    ppath = path / "profile.csv"
    profile = read_side_csv(ppath) if ppath.exists() else None
    return Run(path, meta, rows, samples, profile)
