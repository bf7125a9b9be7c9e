"""The parent of an isolated CUDA run never creates a CUDA context: a context costs hundreds of MB on every GPU
it touches, memory the children measuring the points would not see (and `device_used_bytes` would count).

So the ceilings and the device's facts (name, UUID, properties, NVML) are measured by a child process too,
`python -m bench _ceilings <hand-over json> <threads> <dtype,...>`, pinned to its GPU with CUDA_VISIBLE_DEVICES
like the point children; it writes its results to the hand-over file, which the parent reads and removes.

The parent calls only `torch.cuda.is_available()` (to choose the device) and `torch.cuda.device_count()` (to
check --gpus). In torch 2.13 neither creates a context: device_count asks NVML before CUDA is initialised, and
both fall back to cudaGetDeviceCount, which initialises the driver (cuInit) but makes no context (see
torch/cuda/__init__.py: is_available, device_count; every call that needs a device goes through _lazy_init).
"""
import json
import socket
import subprocess
import sys
from pathlib import Path

from bench.launch.budget import TIMEOUT_FLOOR_S
from bench.gpu.isolate import child_env
from theory.hardware import HardwareSpec, hardware_from_json

CEILINGS_TIMEOUT_S = 4 * TIMEOUT_FLOOR_S         # GiB-sized buffers and a warm-up by time, on a cold GPU


class ParentCuda:
    """The parent's view of CUDA GPU `index` (an index among the GPUs this process sees): kind, threads and,
    once `probe` has run, the facts and ceilings a child measured. It holds no context and no memory."""
    kind = "cuda"

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
            raise RuntimeError("ParentCuda.info() before probe(): the device facts come from the ceilings child")
        return dict(self._facts["info"])

    def uuid(self) -> str:
        return self.info()["gpu_uuid"]

    def device_count(self) -> int:
        return self.cuda.device_count()

    def sync(self) -> None:                   # nothing of this process runs on the GPU
        pass

    def empty_cache(self) -> None:
        pass

    def probe(self, run_dir: Path, dtypes: list[str], log=sys.stderr) -> None:
        """Measure the ceilings (one per dtype) and read the device in a child process pinned to this GPU."""
        out = run_dir / f".ceilings-gpu{self.index}.json"
        cmd = [sys.executable, "-m", "bench", "_ceilings", str(out), str(self.threads), ",".join(dtypes)]
        try:
            r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               timeout=CEILINGS_TIMEOUT_S, env=child_env(str(self.index)))
        except subprocess.TimeoutExpired:
            raise ValueError(f"measuring the ceilings on GPU {self.index} ran past {CEILINGS_TIMEOUT_S:.0f} s "
                             f"and was stopped") from None
        if r.returncode != 0 or not out.exists():
            last = (r.stderr.strip().splitlines() or [f"exit status {r.returncode}"])[-1][:300]
            raise ValueError(f"measuring the ceilings on GPU {self.index} failed in its child process: {last}")
        self._facts = json.loads(out.read_text())
        out.unlink()
        print(f"GPU {self.index}: {self.name()} ({self.uuid()})", file=log, flush=True)

    def ceilings(self, dtype: str) -> tuple[HardwareSpec, dict]:
        """The measured spec (theory kind "gpu") and its detail, as bench.ceilings.measure_ceilings returns them."""
        return (hardware_from_json(self._facts["ceilings"][dtype], f"ceilings child ({dtype})"),
                self._facts["detail"][dtype])


def child_main(out: Path, threads: int, dtypes: list[str]) -> int:
    """`python -m bench _ceilings <out> <threads> <dtype,...>`: the child side of ParentCuda.probe."""
    from bench.ceilings import measure_ceilings
    from bench.device import get_device
    from bench.store.files import write_json
    from bench.runner import as_theory_kind
    device = get_device("cuda", threads)
    host = socket.gethostname()                # what bench.env.run_metadata records as "host"
    ceilings, detail = {}, {}
    for dt in dtypes:
        spec, detail[dt] = measure_ceilings(device, dt, host)
        ceilings[dt] = as_theory_kind(spec).to_json()
    write_json(out, {"info": device.info(), "ceilings": ceilings, "detail": detail})
    return 0
