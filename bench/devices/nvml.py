"""NVML facts about *this* GPU, found by UUID, and clocks / power / clock-event reasons sampled at the timed
repeats' boundaries.

NVML enumerates every GPU on the board in its own order and ignores CUDA_VISIBLE_DEVICES, so an index that is
right for CUDA can describe another GPU in NVML. torch's device properties carry the CUDA device's UUID, and
nvmlDeviceGetHandleByUUID finds the same GPU (NVML spells it with a "GPU-" prefix). NVML comes from the optional
extra `pip install .[gpu]` (nvidia-ml-py, module `pynvml`); without it the columns stay empty.

Each field is read on its own: a function the driver lacks (nvmlDeviceGetCurrentClocksEventReasons arrived with
R535; older drivers answer NVMLError_FunctionNotFound) costs that field only, never the clocks and power beside it.

The clock-event ("throttle") reasons are a bitmask; the row stores the names of the bits set in any sample
(pynvml's own constants nvmlClocksEventReason* / nvmlClocksThrottleReason*, joined by "+"). `GpuIdle` shows
almost everywhere: a sample that falls between two launches, or at a repeat boundary after the synchronize,
sees an idle GPU. It is not a slowdown; SwPowerCap, HwSlowdown, the thermal ones and HwPowerBrakeSlowdown are.

Sampling happens at repeat boundaries (Sampler.sample, called by bench/timing/repeats.py between trajectories),
not from a thread: a Python sampling thread competes with the timing loop for the GIL, and a decode step is
host-bound on a GPU, so every NVML call in a thread would land inside some timed step.
"""
import statistics

REASON_PREFIXES = ("nvmlClocksEventReason", "nvmlClocksThrottleReason")
REASON_ALIASES = {"UserDefinedClocks"}        # pynvml: deprecated name of ApplicationsClocksSetting's bit
IDLE_REASON = "GpuIdle"


def nvml_module():
    try:
        import pynvml
        return pynvml
    except ImportError:
        return None


def nvml_uuid(torch_uuid: str) -> str:
    """torch prints a CUDA UUID bare (e.g. 0b42632a-bc5c-...); NVML's handle lookup wants "GPU-0b42632a-..."."""
    u = str(torch_uuid)
    return u if u.startswith(("GPU-", "MIG-")) else f"GPU-{u}"


def handle_by_uuid(nv, torch_uuid: str):
    nv.nvmlInit()
    return nv.nvmlDeviceGetHandleByUUID(nvml_uuid(torch_uuid))


def _clock_event_reasons(nv, h) -> int:
    """The current reasons bitmask: the R535+ function ("clocks event reasons"), else the older name, which every
    driver since R270 has (pynvml keeps both; a binding newer than the driver fails on the first)."""
    for name in ("nvmlDeviceGetCurrentClocksEventReasons", "nvmlDeviceGetCurrentClocksThrottleReasons"):
        fn = getattr(nv, name, None)
        if fn is None:
            continue
        try:
            return int(fn(h))
        except Exception:                              # NVMLError_FunctionNotFound, NotSupported, ...
            continue
    raise LookupError("no clock event reasons")


# field -> how to read it; each read on its own (snapshot)
FIELDS = {
    "sm_clock_mhz": lambda nv, h: nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_SM),
    "mem_clock_mhz": lambda nv, h: nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_MEM),
    "power_w": lambda nv, h: nv.nvmlDeviceGetPowerUsage(h) / 1e3,       # NVML reports milliwatts
    "throttle_reasons": _clock_event_reasons,
}


def snapshot(nv, h) -> dict:
    """The fields NVML answered; one that fails (a missing function, not supported) is left out, alone."""
    out = {}
    for name, read in FIELDS.items():
        try:
            out[name] = read(nv, h)
        except Exception:
            pass
    return out


def reason_names(nv) -> dict[int, str]:
    """bit -> name, from the installed pynvml's constants (both spellings; single bits only, aliases skipped)."""
    out: dict[int, str] = {}
    for attr in sorted(dir(nv)):
        prefix = next((p for p in REASON_PREFIXES if attr.startswith(p)), None)
        value = getattr(nv, attr, None)
        if prefix is None or not isinstance(value, int) or value <= 0 or value & (value - 1):
            continue
        name = attr[len(prefix):]
        if name not in REASON_ALIASES and (value not in out or prefix == REASON_PREFIXES[0]):
            out[value] = name
    return out


def decode_reasons(mask: int, nv=None) -> str:
    """The names of the bits set, in bit order, joined by "+"; "none" for 0; an unnamed bit as "bit<k>"."""
    names = reason_names(nv) if nv is not None else {}
    bits = [1 << k for k in range(int(mask).bit_length()) if mask >> k & 1]
    return "+".join(names.get(b, f"bit{b.bit_length() - 1}") for b in bits) or "none"


def static_info(torch_uuid: str, nv=None) -> dict:
    """Driver and a one-off snapshot for run.json; empty where NVML is missing or does not know the UUID; a field
    the driver cannot answer is left out."""
    nv = nv or nvml_module()
    if nv is None:
        return {}
    try:
        h = handle_by_uuid(nv, torch_uuid)
    except Exception:                                  # NVMLError of any kind: no facts rather than wrong ones
        return {}
    out = {"nvml_uuid": nvml_uuid(torch_uuid), **snapshot(nv, h)}
    try:
        out["driver"] = nv.nvmlSystemGetDriverVersion()
    except Exception:
        pass
    if "throttle_reasons" in out:
        out["throttle_reasons"] = decode_reasons(out["throttle_reasons"], nv)
    return out


class Sampler:
    """Context manager around the timed repeats: one sample on entry, one per sample() call (a repeat boundary,
    bench/timing/repeats.py), one on exit. No thread (see the module docstring)."""

    def __init__(self, torch_uuid: str, nv=None):
        self.nv = nv or nvml_module()
        self.samples: list[dict] = []
        self._handle = None
        if self.nv is not None:
            try:
                self._handle = handle_by_uuid(self.nv, torch_uuid)
            except Exception:
                self._handle = None

    def sample(self) -> None:
        if self._handle is not None:
            s = snapshot(self.nv, self._handle)
            if s:
                self.samples.append(s)

    def __enter__(self):
        self.sample()
        return self

    def __exit__(self, *exc):
        self.sample()
        return False

    def summary(self) -> dict:
        """Median and minimum SM clock and power over the samples; the reasons OR-ed over them, by name. A field
        no sample holds stays out (its column empty)."""
        s = self.samples
        if not s:
            return {}
        out = {"gpu_state_samples": len(s)}
        clocks = [x["sm_clock_mhz"] for x in s if "sm_clock_mhz" in x]
        power = [x["power_w"] for x in s if "power_w" in x]
        masks = [x["throttle_reasons"] for x in s if "throttle_reasons" in x]
        if clocks:
            out.update({"gpu_sm_clock_mhz": statistics.median(clocks), "gpu_sm_clock_min_mhz": min(clocks)})
        if power:
            out.update({"gpu_power_w": statistics.median(power), "gpu_power_min_w": min(power)})
        if masks:
            reasons = 0
            for m in masks:
                reasons |= m
            out["gpu_throttle_reasons"] = decode_reasons(reasons, self.nv)
        return out
