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
        """Matmul peak for dtype. Only tf32 has a stand-in: it is a matmul mode of fp32 storage, so a device without
        it (T4, a CPU) runs fp32 (said in the output: peak_stand_in). bf16/fp16 and fp8/int8 are different units
        (a T4 has no bf16, an A100 no fp8): a device that lists one but not the other is refused, never guessed."""
        p = self.peak_flops_per_s
        if dtype in p:
            return p[dtype]
        if dtype == "tf32" and "fp32" in p:
            return p["fp32"]
        raise TheoryError(f"hardware {self.id} lists no {dtype} peak (it has {', '.join(p)}), and another dtype's "
                          f"peak is not a stand-in for it; predict one of those, or give a hardware JSON a {dtype} peak")

    def peak_stand_in(self, dtype: str) -> str | None:
        """One line when another dtype's peak stands in for dtype's (None when dtype's own is listed)."""
        if dtype in self.peak_flops_per_s or dtype != "tf32" or "fp32" not in self.peak_flops_per_s:
            return None
        return f"hardware {self.id} lists no tf32 peak: the fp32 peak stands in (tf32 is a matmul mode of fp32)"

    def vector_peak(self, dtype: str) -> float:
        """Peak for element-wise work (norms, softmax, adds): the fp32 rate where listed."""
        return self.peak_flops_per_s.get("fp32") or self.peak(dtype)

    def ridge(self, dtype: str) -> float:
        """FLOPs per DRAM byte where compute and memory time meet, at this dtype's peak."""
        return self.peak(dtype) / self.memory_bandwidth_bytes_per_s

    @property
    def ridge_flops_per_byte(self) -> dict[str, float]:
        return {k: v / self.memory_bandwidth_bytes_per_s for k, v in self.peak_flops_per_s.items()}

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


GIB_OVER_GB = 2**30 / 1e9
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
        # A marketing "80GB" is often 80 GiB (an A100's driver reports 81,920 MiB), so the driver's total may pass
        # the decimal figure by up to 1024³/10⁹; more than that is memory the device does not have.
        if kw["usable_memory_bytes"] > kw["memory_capacity_bytes"] * GIB_OVER_GB:
            raise TheoryError(f"{where}: usable_memory_bytes {kw['usable_memory_bytes']:,} exceeds memory_capacity_bytes "
                              f"{kw['memory_capacity_bytes']:,} (even read as GiB); usable memory cannot pass the "
                              "device's capacity")
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
