"""Read a run directory: run.json, measurements.csv, samples.csv (and profile.csv when present)."""
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

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

    def ceilings(self, dtype: str) -> HardwareSpec | None:
        obj = self.meta.get("ceilings", {}).get(dtype)
        return None if obj is None else hardware_from_json(obj, f"{self.path}/run.json ceilings.{dtype}")

    def datasheet(self) -> HardwareSpec | None:
        return datasheet_for(self.meta.get("device_name", ""), self.meta.get("device", "cpu"))


# CUDA device names (as torch reports them) → catalog ids. MIG slices and CPUs have no datasheet.
DEVICE_NAME_MAP = [
    ("H100 80GB HBM3", "h100-sxm-80gb"), ("H100 PCIe", "h100-pcie-80gb"), ("H100", "h100-sxm-80gb"),
    ("H200", "h200"), ("B200", "b200"), ("A100-SXM4-80GB", "a100-sxm-80gb"), ("A100-SXM4-40GB", "a100-sxm-40gb"),
    ("A100 80GB PCIe", "a100-pcie-80gb"), ("A100-PCIE-40GB", "a100-pcie-40gb"), ("A10G", "a10g"), ("A10", "a10"),
    ("L40S", "l40s"), ("L4", "l4"), ("T4", "t4"), ("RTX 4090", "rtx-4090"), ("MI300X", "mi300x"),
]


def datasheet_for(device_name: str, device_kind: str) -> HardwareSpec | None:
    if device_kind != "cuda" or "MIG" in device_name:
        return None
    for needle, hw_id in DEVICE_NAME_MAP:
        if needle in device_name:
            return hardware_presets()[hw_id]
    return None


def latest_run(results: Path = Path("results")) -> Path:
    runs = sorted((p for p in results.glob("*/run.json") if (p.parent / "measurements.csv").exists()),
                  key=lambda p: p.stat().st_mtime)
    if not runs:
        raise TheoryError(f"no run directory under {results}/ (run `make bench` first)")
    return runs[-1].parent


def load_run(path: str | Path) -> Run:
    path = Path(path)
    if not (path / "run.json").exists():
        raise TheoryError(f"{path} is not a run directory (no run.json)")
    meta = json.loads((path / "run.json").read_text())
    mpath = path / "measurements.csv"
    if not mpath.exists():
        raise TheoryError(f"{path} has no measurements.csv yet (no point finished)")
    rows = pd.read_csv(mpath, dtype={"model": str, "message": str, "point_id": str})
    rows["model"] = rows["model"].fillna("")
    rows["execution"] = rows["execution"].fillna("eager") if "execution" in rows else "eager"   # runs before the axis
    spath = path / "samples.csv"
    samples = pd.read_csv(spath, dtype={"point_id": str}) if spath.exists() else pd.DataFrame(columns=["point_id", "phase", "step", "repeat", "time_s"])
    ppath = path / "profile.csv"
    profile = pd.read_csv(ppath) if ppath.exists() else None
    return Run(path, meta, rows, samples, profile)
