"""A CUDA GPU: CUDA events per step (elapsed_time after end.synchronize()), the caching allocator's counters for
memory, NVML clocks and power sampled while the repeats run (bench/devices/nvml.py)."""
import os

import torch

from bench.devices.base import MemorySample


class CudaDevice:
    """CUDA events per step (elapsed_time after end.synchronize()), allocator counters for memory.

    Every CUDA call goes through `self.cuda` (torch.cuda unless a test hands in the stand-in of bench.devices.fake,
    which also overrides `torch_device`): that is the whole seam, so the tests run these very code paths."""
    kind = "cuda"
    size_class = "cuda"
    isolated = False

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
        from bench.devices.nvml import Sampler
        self._sampler = Sampler(self.uuid())
        return self._sampler

    def state(self) -> dict:
        """Per-point GPU state: the samples taken during the timed repeats, and this GPU's UUID."""
        out = {"gpu_uuid": self.uuid()}
        if self._sampler is not None:
            out.update(self._sampler.summary())
        return out

    def info(self) -> dict:
        from bench.devices.nvml import static_info
        props = self.cuda.get_device_properties(self.index)
        out = {"device_kind": "cuda", "device_name": props.name, "threads": self.threads,
               "cuda_version": torch.version.cuda, "capability": f"{props.major}.{props.minor}",
               "total_memory_bytes": props.total_memory, "multiprocessors": props.multi_processor_count,
               "l2_cache_bytes": getattr(props, "L2_cache_size", None), "gpu_uuid": str(props.uuid),
               "tf32_matmul": torch.backends.cuda.matmul.allow_tf32, "tf32_cudnn": torch.backends.cudnn.allow_tf32,
               "alloc_conf": os.environ.get("PYTORCH_CUDA_ALLOC_CONF", ""), "mig": "MIG" in props.name}
        out.update(static_info(str(props.uuid)))
        return out
