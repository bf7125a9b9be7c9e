"""Hardware specs: datasheet presets, user JSON files of the same shape, and bench's measured ceilings.

Peaks are dense (never the 2:4 sparsity figure). Bandwidths are bytes per second; the interconnect
bandwidth is per direction (a datasheet's bidirectional NVLink figure halved). CPUs have no preset:
their specs come only from the ceilings bench measures on the box.
"""
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from theory.dtypes import DTYPE_BYTES
from theory.errors import TheoryError
from theory.jsonio import check_keys, non_negative_number, positive_int, positive_number, read_json

PRESET_DIR = Path(__file__).parent / "data" / "hardware"


@dataclass(frozen=True)
class HardwareSpec:
    id: str
    name: str
    peak_flops_per_s: dict[str, float]          # canonical dtype -> dense peak
    memory_bandwidth_bytes_per_s: float
    memory_capacity_bytes: int                  # the marketing figure ("80GB")
    interconnect_bandwidth_bytes_per_s: float = 0.0   # per direction; 0 = none
    interconnect_latency_s: float = 0.0
    launch_overhead_s: float = 0.0              # fixed cost per op instance (kernel launch / CPU dispatch)
    llc_bytes: int | None = None                # last-level cache; working sets below it beat DRAM bandwidth
    llc_bandwidth_bytes_per_s: float | None = None
    kind: str = "gpu"                           # "gpu" or "cpu"
    source: str = ""
    notes: str = ""
    usable_memory_bytes: int | None = None      # what the driver reports as total (nvidia-smi memory.total)
    usable_memory_source: str = ""

    @property
    def usable_bytes(self) -> int:
        """Memory capacity answers use: the driver's total where the preset states it, else the marketing figure."""
        return self.usable_memory_bytes or self.memory_capacity_bytes

    def peak(self, dtype: str) -> float:
        """Matmul peak for dtype. tf32 falls back to fp32 and fp16/bf16 to each other when only one is listed."""
        p = self.peak_flops_per_s
        for candidate in (dtype, {"bf16": "fp16", "fp16": "bf16", "tf32": "fp32", "int8": "fp8", "fp8": "int8"}.get(dtype)):
            if candidate in p:
                return p[candidate]
        raise TheoryError(f"hardware {self.id} lists no peak for dtype {dtype} (it has {', '.join(p)})")

    def vector_peak(self, dtype: str) -> float:
        """Peak for element-wise work (norms, softmax, adds): the fp32 rate where listed."""
        return self.peak_flops_per_s.get("fp32") or self.peak(dtype)

    @property
    def ridge_flops_per_byte(self) -> dict[str, float]:
        return {k: v / self.memory_bandwidth_bytes_per_s for k, v in self.peak_flops_per_s.items()}

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


FIELDS = set(HardwareSpec.__dataclass_fields__)
REQUIRED = {"id", "name", "peak_flops_per_s", "memory_bandwidth_bytes_per_s", "memory_capacity_bytes"}


def hardware_from_json(obj: Any, where: str) -> HardwareSpec:
    check_keys(obj, FIELDS, REQUIRED, where)
    peaks = obj["peak_flops_per_s"]
    if not isinstance(peaks, dict) or not peaks:
        raise TheoryError(f"{where}: peak_flops_per_s must be an object of dtype -> FLOP/s")
    bad = sorted(set(peaks) - set(DTYPE_BYTES))
    if bad:
        raise TheoryError(f"{where}: unknown dtype(s) in peak_flops_per_s: {', '.join(bad)}")
    peaks = {k: positive_number(v, f"peak_flops_per_s.{k}", where) for k, v in peaks.items()}
    hw_id = obj["id"]
    if not isinstance(hw_id, str) or hw_id != hw_id.lower() or " " in hw_id or not hw_id:
        raise TheoryError(f"{where}: id must be lower-case with hyphens, got {hw_id!r}")
    kw = dict(obj, peak_flops_per_s=peaks)
    kw["memory_bandwidth_bytes_per_s"] = positive_number(obj["memory_bandwidth_bytes_per_s"], "memory_bandwidth_bytes_per_s", where)
    kw["memory_capacity_bytes"] = positive_int(obj["memory_capacity_bytes"], "memory_capacity_bytes", where)
    if obj.get("usable_memory_bytes") is not None:
        kw["usable_memory_bytes"] = positive_int(obj["usable_memory_bytes"], "usable_memory_bytes", where)
    for key in ("interconnect_bandwidth_bytes_per_s", "interconnect_latency_s", "launch_overhead_s"):
        kw[key] = non_negative_number(obj.get(key, 0.0), key, where)
    if kw.get("kind", "gpu") not in ("gpu", "cpu"):
        raise TheoryError(f"{where}: kind must be 'gpu' or 'cpu'")
    return HardwareSpec(**kw)


@lru_cache(maxsize=1)
def hardware_presets() -> dict[str, HardwareSpec]:
    specs = {}
    for p in sorted(PRESET_DIR.glob("*.json")):
        spec = hardware_from_json(read_json(p), str(p.name))
        specs[spec.id] = spec
    return specs


def load_hardware(name_or_path: str) -> HardwareSpec:
    """A preset id, or a path to a JSON file of the same shape (bench's ceilings.json included)."""
    presets = hardware_presets()
    if name_or_path in presets:
        return presets[name_or_path]
    path = Path(name_or_path)
    if path.suffix == ".json" or path.exists():
        if not path.exists():
            raise TheoryError(f"hardware file {path} does not exist")
        return hardware_from_json(read_json(path), str(path))
    raise TheoryError(f"unknown hardware {name_or_path!r}; presets: {', '.join(presets)} (or a path to a JSON spec)")
