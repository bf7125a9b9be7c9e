"""TEST-ONLY CUDA stand-in: a fake `torch.cuda` whose tensors stay on the CPU.

It proves plumbing, not numbers: every CUDA branch of bench runs (events, allocator counters and peaks,
empty_cache, mem_get_info, device properties with L2 size and UUID, NVTX, sync debug mode), but times are host
clock readings and memory counters are whatever a test sets. The real `CudaDevice` runs unchanged; the stand-in
overrides only its seam: the module it calls (`cuda`), `torch_device` ("cpu") and its size class ("tiny").

Switched on by the environment variable INFERENCE_GAPS_TEST_FAKE_CUDA=<number of fake GPUs>, which
`bench.devices.select.get_device` honours so that isolated child processes get the stand-in too. Never set it for real
measurements: run.json then records device_name "FAKE-CUDA ..." so such a run cannot pass for a real one.
"""
import os
import time
from types import SimpleNamespace

ENV = "INFERENCE_GAPS_TEST_FAKE_CUDA"
CONTEXT_LOG_ENV = "INFERENCE_GAPS_TEST_FAKE_CUDA_LOG"     # file: one "<pid> <call>" line per context-making call
FAKE_TOTAL_BYTES = 80 * 2**30
FAKE_L2_BYTES = 50 * 2**20


def enabled() -> int:
    """Number of fake GPUs asked for (0: the stand-in is off)."""
    try:
        return max(0, int(os.environ.get(ENV, "0") or 0))
    except ValueError:
        return 0


def physical_index(index: int) -> int:
    """The fake GPU behind visible index `index`, honouring CUDA_VISIBLE_DEVICES like the driver does."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible:
        return int(visible.split(",")[index])
    return index


def note_context_call(name: str) -> None:
    """Every fake call that would create a CUDA context on a real GPU (all but is_available and device_count,
    which torch answers from NVML or cuInit alone) is appended, with the calling process id, to the file named
    by INFERENCE_GAPS_TEST_FAKE_CUDA_LOG: tests read it to prove which processes touched the GPU."""
    path = os.environ.get(CONTEXT_LOG_ENV)
    if path:
        with open(path, "a") as f:
            f.write(f"{os.getpid()} {name}\n")


def fake_uuid(physical: int) -> str:
    return f"fa4ec0da-0000-4000-8000-{physical:012d}"


class _Event:
    def __init__(self, enable_timing: bool = False):
        self.t = None

    def record(self, stream=None):
        self.t = time.perf_counter()

    def synchronize(self):
        pass

    def query(self) -> bool:
        return self.t is not None                     # recorded: done (the stand-in's work is synchronous)

    def elapsed_time(self, end) -> float:
        return (end.t - self.t) * 1e3                 # milliseconds, like torch.cuda.Event


class _Nvtx:
    def __init__(self, log):
        self.log, self.depth = log, 0

    def range_push(self, name):
        self.depth += 1
        return self.depth

    def range_pop(self):
        if self.depth == 0:
            raise RuntimeError("nvtx range_pop without a matching push")
        self.depth -= 1
        return self.depth


class FakeCuda:
    """The subset of torch.cuda that bench calls. `log` records allocator and mode calls in order, for tests;
    calls that would create a CUDA context are also noted by note_context_call."""

    def Event(self, enable_timing: bool = False):
        note_context_call("Event")
        return _Event(enable_timing)

    def __init__(self, count: int = 1):
        self.count = count
        self.log: list[str] = []
        self.nvtx = _Nvtx(self.log)
        self.allocated = self.reserved = 0            # what the fake allocator holds now (tests set these)
        self.peak_allocated = self.peak_reserved = 0
        self.sync_debug_mode = 0
        self.sync_notice_given = False
        self.current = 0

    def is_available(self) -> bool:
        return True

    def device_count(self) -> int:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        return len(visible.split(",")) if visible else self.count

    def set_device(self, index: int) -> None:
        note_context_call("set_device")
        if not 0 <= index < self.device_count():
            raise RuntimeError(f"fake CUDA: invalid device ordinal {index}")
        self.current = index

    def get_device_name(self, index: int = 0) -> str:
        return self.get_device_properties(index).name

    def get_device_properties(self, index: int = 0):
        note_context_call("get_device_properties")
        phys = physical_index(index)
        return SimpleNamespace(name=f"FAKE-CUDA stand-in {phys}", major=9, minor=0, total_memory=FAKE_TOTAL_BYTES,
                               multi_processor_count=132, L2_cache_size=FAKE_L2_BYTES, uuid=fake_uuid(phys))

    def synchronize(self, index=None) -> None:
        note_context_call("synchronize")
        self.log.append("synchronize")

    def mem_get_info(self, index=None) -> tuple[int, int]:
        note_context_call("mem_get_info")
        return FAKE_TOTAL_BYTES - 2**30 - self.reserved, FAKE_TOTAL_BYTES

    def memory_allocated(self, index=None) -> int:
        note_context_call("memory_allocated")
        return self.allocated

    def memory_reserved(self, index=None) -> int:
        note_context_call("memory_reserved")
        return self.reserved

    def max_memory_allocated(self, index=None) -> int:
        note_context_call("max_memory_allocated")
        return max(self.peak_allocated, self.allocated)

    def max_memory_reserved(self, index=None) -> int:
        note_context_call("max_memory_reserved")
        return max(self.peak_reserved, self.reserved)

    def reset_peak_memory_stats(self, index=None) -> None:
        note_context_call("reset_peak_memory_stats")
        self.log.append("reset_peak_memory_stats")
        self.peak_allocated, self.peak_reserved = self.allocated, self.reserved

    def empty_cache(self) -> None:
        note_context_call("empty_cache")
        self.log.append("empty_cache")
        self.reserved = self.allocated                 # a caching allocator hands back its unused segments

    def _sleep(self, cycles: int) -> None:
        """torch.cuda._sleep: a spin kernel on the GPU; on the CPU stand-in work is synchronous, so nothing."""
        note_context_call("_sleep")

    def set_sync_debug_mode(self, mode) -> None:
        note_context_call("set_sync_debug_mode")
        if not self.sync_notice_given:                # torch warns this once per process (TORCH_WARN_ONCE)
            import warnings
            warnings.warn("Synchronization debug mode is a prototype feature and does not yet detect all "
                          "synchronizing operations", UserWarning)
            self.sync_notice_given = True
        self.log.append(f"set_sync_debug_mode({mode})")
        self.sync_debug_mode = mode


def standin_device(index: int = 0, threads: int = 1):
    """A CudaDevice with the fake torch.cuda and CPU tensors. Its size class is "tiny": the ceilings and the
    canary take their "tiny" rows (4 MiB buffers, one 128x256x256 matmul), since the CUDA sizes (GiB buffers,
    8k matmuls) would run on the CPU for minutes: plumbing, not numbers."""
    from bench.devices.cuda import CudaDevice

    class StandInCudaDevice(CudaDevice):
        """CudaDevice with the fake torch.cuda and CPU tensors: the only things it overrides, with its size class."""
        size_class = "tiny"

        @property
        def torch_device(self) -> str:
            return "cpu"

    return StandInCudaDevice(index=index, threads=threads, cuda=FakeCuda(enabled() or 1))
