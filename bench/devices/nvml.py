"""NVML facts about *this* GPU, found by UUID, and clocks / power / throttle reasons sampled while the timed
repeats run.

NVML enumerates every GPU on the board in its own order and ignores CUDA_VISIBLE_DEVICES, so an index that is
right for CUDA can describe another GPU in NVML. torch's device properties carry the CUDA device's UUID, and
nvmlDeviceGetHandleByUUID finds the same GPU (NVML spells it with a "GPU-" prefix). NVML comes from the optional
extra `pip install .[gpu]` (nvidia-ml-py, module `pynvml`); without it the columns stay empty.
"""
import statistics
import threading


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


def _throttle_reasons(nv, h) -> int:
    # Renamed "clocks event reasons" in newer NVML; the old name remains in older bindings.
    fn = getattr(nv, "nvmlDeviceGetCurrentClocksEventReasons", None) or nv.nvmlDeviceGetCurrentClocksThrottleReasons
    return int(fn(h))


def snapshot(nv, h) -> dict:
    return {"sm_clock_mhz": nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_SM),
            "mem_clock_mhz": nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_MEM),
            "power_w": nv.nvmlDeviceGetPowerUsage(h) / 1e3,            # NVML reports milliwatts
            "throttle_reasons": _throttle_reasons(nv, h)}


def static_info(torch_uuid: str, nv=None) -> dict:
    """Driver and a one-off snapshot for run.json; empty where NVML is missing or does not know the UUID."""
    nv = nv or nvml_module()
    if nv is None:
        return {}
    try:
        h = handle_by_uuid(nv, torch_uuid)
        return {"driver": nv.nvmlSystemGetDriverVersion(), "nvml_uuid": nvml_uuid(torch_uuid), **snapshot(nv, h)}
    except Exception:                                  # NVMLError of any kind: no facts rather than wrong ones
        return {}


class Sampler:
    """Context manager: a background thread samples the GPU every `period_s` while the block runs."""

    def __init__(self, torch_uuid: str, period_s: float = 0.05, nv=None):
        self.nv = nv or nvml_module()
        self.period_s = period_s
        self.samples: list[dict] = []
        self._stop = threading.Event()
        self._thread = None
        self._handle = None
        if self.nv is not None:
            try:
                self._handle = handle_by_uuid(self.nv, torch_uuid)
            except Exception:
                self._handle = None

    def _run(self):
        while True:
            try:
                self.samples.append(snapshot(self.nv, self._handle))
            except Exception:
                return
            if self._stop.wait(self.period_s):
                return

    def __enter__(self):
        if self._handle is not None:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        return False

    def summary(self) -> dict:
        """Median and minimum SM clock and power over the samples; throttle reasons OR-ed over them."""
        s = self.samples
        if not s:
            return {}
        clocks, power = [x["sm_clock_mhz"] for x in s], [x["power_w"] for x in s]
        reasons = 0
        for x in s:
            reasons |= x["throttle_reasons"]
        return {"gpu_sm_clock_mhz": statistics.median(clocks), "gpu_sm_clock_min_mhz": min(clocks),
                "gpu_power_w": statistics.median(power), "gpu_power_min_w": min(power),
                "gpu_throttle_reasons": reasons, "gpu_state_samples": len(s)}
