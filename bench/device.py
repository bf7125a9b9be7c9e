"""The one device-specific layer: timer, memory probe, synchronisation and facts about the device.

`CpuDevice` is what the tests exercise; `CudaDevice` is the same interface with CUDA events and the caching
allocator's counters. Everything else in bench is device-agnostic.
"""
import contextlib
import os
import platform
import time
from dataclasses import dataclass

import torch


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


class CpuDevice:
    kind = "cpu"

    def __init__(self, threads: int = 1):
        self.threads = threads
        torch.set_num_threads(threads)
        self._can_reset_rss = self._try_reset_rss()

    @property
    def torch_device(self) -> str:
        return "cpu"

    def name(self) -> str:
        model = ""
        try:
            with open("/proc/cpuinfo") as f:
                for line in f:
                    if line.startswith("model name"):
                        model = line.split(":", 1)[1].strip()
                        break
        except OSError:
            pass
        return model or platform.processor() or "cpu"

    def sync(self) -> None:
        pass

    def start(self):
        return time.perf_counter()

    def stop(self, token) -> float:
        """Seconds since start(token)."""
        return time.perf_counter() - token

    def free_bytes(self) -> int:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
        return 0

    def total_bytes(self) -> int:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")

    @staticmethod
    def _try_reset_rss() -> bool:
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")               # resets VmHWM (peak RSS) to the current RSS
            return True
        except OSError:
            return False

    @staticmethod
    def _status_bytes(key: str) -> int | None:
        try:
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith(key):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        return None

    def empty_cache(self) -> None:
        pass

    def sampling(self):
        return contextlib.nullcontext()

    def reset_peak(self) -> None:
        if self._can_reset_rss:
            self._try_reset_rss()

    def read_peak(self) -> MemorySample:
        return MemorySample(rss_peak_bytes=self._status_bytes("VmHWM:") if self._can_reset_rss else None)

    def info(self) -> dict:
        return {"device_kind": "cpu", "device_name": self.name(), "threads": self.threads,
                "rss_peak_resettable": self._can_reset_rss, "logical_cpus": os.cpu_count(),
                "llc_bytes": llc_bytes()}


class CudaDevice:
    """CUDA events per step (elapsed_time after end.synchronize()), allocator counters for memory.

    Every CUDA call goes through `self.cuda` (torch.cuda unless a test hands in the stand-in of bench.gpu.fake,
    which also overrides `torch_device`): that is the whole seam, so the tests run these very code paths."""
    kind = "cuda"

    def __init__(self, index: int = 0, threads: int = 1, cuda=None):
        self.cuda = torch.cuda if cuda is None else cuda
        self.index = index
        self.threads = threads
        torch.set_num_threads(threads)
        self.cuda.set_device(index)
        self._baseline = (0, 0)
        self._sampler = None

    @property
    def torch_device(self) -> str:
        return f"cuda:{self.index}"

    def name(self) -> str:
        return self.cuda.get_device_name(self.index)

    def uuid(self) -> str:
        return str(self.cuda.get_device_properties(self.index).uuid)

    def sync(self) -> None:
        self.cuda.synchronize(self.index)

    def start(self):
        s, e = self.cuda.Event(enable_timing=True), self.cuda.Event(enable_timing=True)
        s.record()
        return s, e

    def stop(self, token) -> float:
        s, e = token
        e.record()
        e.synchronize()
        return s.elapsed_time(e) / 1e3           # elapsed_time is in milliseconds

    def free_bytes(self) -> int:
        return self.cuda.mem_get_info(self.index)[0]

    def total_bytes(self) -> int:
        return self.cuda.mem_get_info(self.index)[1]

    def empty_cache(self) -> None:
        """Hand the caching allocator's unused segments back to the driver (other processes see them free)."""
        self.sync()
        self.cuda.empty_cache()

    def reset_peak(self) -> None:
        # reset_peak_memory_stats resets the peak to the *current* value, so keep a baseline to subtract.
        self.sync()
        self.cuda.reset_peak_memory_stats(self.index)
        self._baseline = (self.cuda.memory_allocated(self.index), self.cuda.memory_reserved(self.index))

    def read_peak(self) -> MemorySample:
        self.sync()
        free, total = self.cuda.mem_get_info(self.index)
        peak_alloc = self.cuda.max_memory_allocated(self.index)
        peak_reserved = self.cuda.max_memory_reserved(self.index)
        return MemorySample(
            allocated_bytes=peak_alloc - self._baseline[0], reserved_bytes=peak_reserved - self._baseline[1],
            device_used_bytes=total - free, allocated_peak_total_bytes=peak_alloc,
            reserved_peak_total_bytes=peak_reserved)

    def sampling(self):
        """Context manager around the timed repeats: NVML clocks, power and throttle reasons sampled meanwhile."""
        from bench.gpu.nvml import Sampler
        self._sampler = Sampler(self.uuid())
        return self._sampler

    def state(self) -> dict:
        """Per-point GPU state: the samples taken during the timed repeats, and this GPU's UUID."""
        out = {"gpu_uuid": self.uuid()}
        if self._sampler is not None:
            out.update(self._sampler.summary())
        return out

    def info(self) -> dict:
        from bench.gpu.nvml import static_info
        props = self.cuda.get_device_properties(self.index)
        out = {"device_kind": "cuda", "device_name": props.name, "threads": self.threads,
               "cuda_version": torch.version.cuda, "capability": f"{props.major}.{props.minor}",
               "total_memory_bytes": props.total_memory, "multiprocessors": props.multi_processor_count,
               "l2_cache_bytes": getattr(props, "L2_cache_size", None), "gpu_uuid": str(props.uuid),
               "tf32_matmul": torch.backends.cuda.matmul.allow_tf32, "tf32_cudnn": torch.backends.cudnn.allow_tf32,
               "alloc_conf": os.environ.get("PYTORCH_CUDA_ALLOC_CONF", ""), "mig": "MIG" in props.name}
        out.update(static_info(str(props.uuid)))
        return out


def llc_bytes() -> int | None:
    """Size of the largest CPU cache level, from sysfs."""
    best = None
    base = "/sys/devices/system/cpu/cpu0/cache"
    try:
        for idx in os.listdir(base):
            try:
                with open(f"{base}/{idx}/size") as f:
                    text = f.read().strip()
            except OSError:
                continue
            mult = {"K": 1024, "M": 1024**2, "G": 1024**3}.get(text[-1], 1)
            size = int(text.rstrip("KMG")) * mult
            best = size if best is None or size > best else best
    except OSError:
        return None
    return best


def get_device(kind: str = "auto", threads: int = 1, index: int = 0, log=None, isolated: bool = False):
    """log: where `auto` says which device it chose and why (one line). isolated: this process only hands
    points to child processes; on CUDA it gets a view of the GPU that creates no context (bench.gpu.probe)."""
    from bench.gpu import detect, fake
    from bench.gpu.probe import ParentCuda
    if fake.enabled() and kind in ("auto", "cuda"):          # test-only stand-in (see bench.gpu.fake)
        if isolated:
            return ParentCuda(index, threads, cuda=fake.FakeCuda(fake.enabled()))
        return fake.standin_device(index, threads)
    if kind == "auto":
        kind, why = detect.choose_auto(torch.cuda.is_available(), torch.version.cuda, torch.__version__)
        if log is not None:
            print(f"--device auto: {kind} ({why})", file=log, flush=True)
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("--device cuda asked for, but torch sees no CUDA device")
        return ParentCuda(index, threads) if isolated else CudaDevice(index=index, threads=threads)
    if kind != "cpu":
        raise ValueError(f"device must be cpu, cuda or auto, got {kind!r}")
    return CpuDevice(threads=threads)
