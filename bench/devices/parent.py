"""The parent of an isolated CUDA run never creates a CUDA context: a context costs hundreds of MB on every GPU
it touches, memory the children measuring the points would not see (and `device_used_bytes` would count).

So the ceilings and the device's facts (name, UUID, properties, NVML) are measured by a child process too,
`python -m bench _ceilings <hand-over json> <threads> <dtype,...>` (bench/launch/child.py), pinned to its GPU with CUDA_VISIBLE_DEVICES
like the point children; it writes its results to the hand-over file, which the parent reads and removes.

The parent calls only `torch.cuda.is_available()` (to choose the device) and `torch.cuda.device_count()` (to
check --gpus). In torch 2.13 neither creates a context: device_count asks NVML before CUDA is initialised, and
both fall back to cudaGetDeviceCount, which initialises the driver (cuInit) but makes no context (see
torch/cuda/__init__.py: is_available, device_count; every call that needs a device goes through _lazy_init).
"""
from theory.hardware import HardwareSpec, hardware_from_json


class ParentCuda:
    """The parent's view of CUDA GPU `index` (an index among the GPUs this process sees): kind, threads and,
    once the ceilings child has run (bench/launch/child.py probe_ceilings), the facts and ceilings a child measured. It holds no context and no memory."""
    kind = "cuda"
    size_class = "cuda"
    isolated = True

    def __init__(self, index: int = 0, threads: int = 1, cuda=None):
        import torch
        self.cuda = torch.cuda if cuda is None else cuda     # seam: the tests hand in the stand-in
        self.index, self.threads = index, threads
        torch.set_num_threads(threads)                # as every device does; run.json's torch_threads reads it
        count = self.cuda.device_count()
        if not 0 <= index < count:
            raise ValueError(f"GPU index {index}: this process sees {count} GPU(s)")
        self._facts: dict | None = None

    def name(self) -> str:
        return self._facts["info"]["device_name"] if self._facts else f"CUDA GPU {self.index}"

    def info(self) -> dict:
        if self._facts is None:
            raise RuntimeError("ParentCuda.info() before probe_ceilings(): the device facts come from the ceilings child")
        return dict(self._facts["info"])

    def uuid(self) -> str:
        return self.info()["gpu_uuid"]

    def device_count(self) -> int:
        return self.cuda.device_count()

    def sync(self) -> None:                   # nothing of this process runs on the GPU
        pass

    def empty_cache(self) -> None:
        pass

    def set_facts(self, facts: dict) -> None:
        """What the ceilings child measured (bench/launch/child.py probe_ceilings): info, ceilings, detail."""
        self._facts = facts

    def ceilings(self, dtype: str) -> tuple[HardwareSpec, dict]:
        """The measured spec (theory kind "gpu") and its detail, as bench.ceilings.measure_ceilings returns them."""
        return (hardware_from_json(self._facts["ceilings"][dtype], f"ceilings child ({dtype})"),
                self._facts["detail"][dtype])

    def canary(self) -> dict | None:
        """The canary baseline the ceilings child took on this GPU ({baseline_s, slow_rel}), or None."""
        return (self._facts or {}).get("canary")

    def free_bytes(self) -> int:
        raise RuntimeError("ParentCuda holds no CUDA context: its points measure memory in their children")

    def total_bytes(self) -> int:
        return int(self.info()["total_memory_bytes"])

    def state(self) -> dict:
        return {}
