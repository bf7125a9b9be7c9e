"""Which datasheet preset describes a measured device: an exact match on the name the driver reports and on
its memory size (theory/data/device_names.json), never a substring ("NVIDIA L40" is not an L4, "GH200" is not
an H200, "H100 NVL" is not the SXM part). No match: no datasheet, and the report says so."""
from functools import lru_cache
from pathlib import Path

from theory.jsonio import read_json

NAMES_FILE = Path(__file__).parent / "data" / "device_names.json"


@lru_cache(maxsize=1)
def device_table() -> tuple[list[dict], tuple[float, float]]:
    obj = read_json(NAMES_FILE)
    return obj["devices"], tuple(obj["memory_band"])


def match_device(name: str, memory_bytes: int | None) -> tuple[str | None, str]:
    """(hardware preset id or None, why). MIG slices never match: they are a fraction of the board."""
    name = (name or "").strip()
    if "MIG" in name:
        return None, f"no datasheet: {name!r} is a MIG slice"
    devices, (lo, hi) = device_table()
    entry = next((d for d in devices if d["name"] == name), None)
    if entry is None:
        return None, f"no datasheet: device name {name!r} is not in theory/data/device_names.json"
    if memory_bytes is not None:
        ratio = memory_bytes / (entry["memory_gb"] * 2**30)
        if not lo <= ratio <= hi:
            return None, (f"no datasheet: {name!r} reports {memory_bytes / 2**30:.1f} GiB, not the "
                          f"{entry['memory_gb']} GB of the board by that name")
    if entry["hardware"] is None:
        return None, f"no datasheet: {name!r} is known but has no hardware preset"
    return entry["hardware"], f"datasheet {entry['hardware']} (device name {name!r})"
