"""NVML on CPU, through a fake pynvml: clocks, power and the clock-event reasons sampled at the repeats' boundaries
(no thread), each field read on its own so a driver missing one function loses only that field, reasons by name."""
import pytest


class FakeNvml:
    NVML_CLOCK_SM, NVML_CLOCK_MEM = 0, 1
    nvmlClocksThrottleReasonSwPowerCap = 0x4                         # pynvml's constants name the bits

    def __init__(self):
        self.clocks = iter([1980, 1755, 1980, 1410] + [1980] * 1000)
        self.looked_up = []

    def nvmlInit(self):
        pass

    def nvmlDeviceGetHandleByIndex(self, i):
        raise AssertionError("NVML indices are not CUDA indices: look up by UUID")

    def nvmlDeviceGetHandleByUUID(self, uuid):
        self.looked_up.append(uuid)
        return "h"

    def nvmlDeviceGetClockInfo(self, h, which):
        return next(self.clocks) if which == self.NVML_CLOCK_SM else 2619

    def nvmlDeviceGetPowerUsage(self, h):
        return 350_000                                                  # milliwatts

    def nvmlDeviceGetCurrentClocksThrottleReasons(self, h):
        return 4

    def nvmlSystemGetDriverVersion(self):
        return "550.54"


def test_nvml_by_uuid_sampled_at_the_repeat_boundaries():
    from bench.devices.nvml import Sampler, static_info
    import threading
    nv = FakeNvml()
    assert static_info("0b42632a-bc5c", nv)["driver"] == "550.54"
    threads = threading.active_count()
    with Sampler("0b42632a-bc5c", nv=nv) as s:
        assert threading.active_count() == threads          # no sampling thread competing for the GIL
        for _ in range(3):
            s.sample()                                      # what bench/timing/repeats.py calls after a repeat
    assert nv.looked_up == ["GPU-0b42632a-bc5c", "GPU-0b42632a-bc5c"]   # torch's bare UUID, NVML's prefix
    out = s.summary()
    assert out["gpu_state_samples"] == 5 and out["gpu_sm_clock_min_mhz"] == 1410
    assert out["gpu_sm_clock_mhz"] >= 1755 and out["gpu_power_w"] == 350.0
    assert out["gpu_throttle_reasons"] == "SwPowerCap"     # bit 0x4, by its name in pynvml (was the raw 4)


class OldDriverNvml(FakeNvml):
    """A current binding on a pre-R535 driver: the clocks-event function exists in Python, fails in the driver."""
    class NVMLError_FunctionNotFound(Exception):
        pass
    nvmlClocksEventReasonGpuIdle, nvmlClocksEventReasonSwPowerCap = 0x1, 0x4
    nvmlClocksThrottleReasonGpuIdle, nvmlClocksThrottleReasonUserDefinedClocks = 0x1, 0x2
    nvmlClocksThrottleReasonApplicationsClocksSetting, nvmlClocksThrottleReasonAll = 0x2, 0x7

    def nvmlDeviceGetCurrentClocksEventReasons(self, h):
        raise self.NVMLError_FunctionNotFound("Function Not Found")

    def nvmlDeviceGetCurrentClocksThrottleReasons(self, h):
        return 0x1 | 0x2 | 0x40


def test_nvml_missing_function_costs_only_its_field():
    from bench.devices.nvml import Sampler, decode_reasons, static_info
    nv = OldDriverNvml()
    info = static_info("u", nv)
    assert info["power_w"] == 350.0 and info["throttle_reasons"] == "GpuIdle+ApplicationsClocksSetting+bit6"

    class NoPower(OldDriverNvml):
        def nvmlDeviceGetPowerUsage(self, h):
            raise self.NVMLError_FunctionNotFound("Function Not Found")
    with Sampler("u", nv=NoPower()) as s:
        s.sample()
    out = s.summary()                                      # was {}: one failing call emptied every column
    assert out["gpu_state_samples"] == 3 and out["gpu_sm_clock_mhz"] > 0 and "gpu_power_w" not in out
    assert out["gpu_throttle_reasons"].startswith("GpuIdle")
    assert decode_reasons(0, nv) == "none"


def test_nvml_reason_names_come_from_the_installed_pynvml():
    pynvml = pytest.importorskip("pynvml")
    from bench.devices.nvml import decode_reasons
    assert decode_reasons(pynvml.nvmlClocksThrottleReasonGpuIdle | pynvml.nvmlClocksThrottleReasonSwPowerCap
                          | pynvml.nvmlClocksThrottleReasonHwThermalSlowdown, pynvml) == \
        "GpuIdle+SwPowerCap+HwThermalSlowdown"
