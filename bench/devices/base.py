"""The device contract: what bench asks of a device, written down. Everything device-specific sits behind it
(bench/devices/): CpuDevice, CudaDevice, ParentCuda (an isolated run's parent, which holds facts a child
measured and runs nothing), and the test-only CUDA stand-in; bench/devices/select.py is the only file that
knows every class. Where the code still asks `device.kind` it asks what runs (CUDA events, NVML, a CUDA-only
execution mode), never which class it holds.
"""
from dataclasses import dataclass
from typing import ContextManager, Protocol, runtime_checkable


@dataclass
class MemorySample:
    """Peak memory of one step. CUDA: allocator peak − baseline (allocated, reserved). CPU: peak RSS of the
    process, which includes what the C allocator retains. Columns a device cannot measure stay None."""
    allocated_bytes: int | None = None
    reserved_bytes: int | None = None
    rss_peak_bytes: int | None = None
    device_used_bytes: int | None = None
    allocated_peak_total_bytes: int | None = None    # CUDA: absolute peaks, for growth per token
    reserved_peak_total_bytes: int | None = None



SIZE_CLASSES = ("cpu", "cuda", "tiny")      # which row of a size table (ceilings, canary) a device takes


@runtime_checkable
class Device(Protocol):
    kind: str                 # "cpu" | "cuda": what runs (theory's HardwareSpec calls CUDA "gpu")
    size_class: str           # one of SIZE_CLASSES; "tiny": the CPU stand-in of a CUDA device (tests only)
    isolated: bool            # True: this process hands points and ceilings to child processes (ParentCuda)
    threads: int              # torch threads of this process

    @property
    def torch_device(self) -> str: ...            # where tensors go ("cpu", "cuda:0")

    def name(self) -> str: ...
    def info(self) -> dict: ...                    # facts for run.json (device_kind, device_name, ...)
    def sync(self) -> None: ...                    # wait for the device's queued work
    def start(self): ...                           # a timer token ...
    def stop(self, token) -> float: ...            # ... and the seconds since start(token), on the device's clock
    def free_bytes(self) -> int: ...
    def total_bytes(self) -> int: ...
    def empty_cache(self) -> None: ...             # hand cached, unused memory back
    def reset_peak(self) -> None: ...              # memory probe: peak counters from now ...
    def read_peak(self) -> MemorySample: ...       # ... and the peak since reset_peak
    def sampling(self) -> ContextManager: ...      # around the timed repeats (CUDA: NVML clocks, power)
    def state(self) -> dict: ...                   # per-point row fields from that sampling ({} on CPU)
