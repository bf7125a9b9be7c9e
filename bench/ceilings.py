"""The device's real ceilings in the run's dtype, stored in the shape of a theory HardwareSpec.

- matmul FLOP/s: the best of a few linear-layer shapes (x @ Wᵀ, 2·m·k·n FLOPs each);
- streaming read bandwidth: a matrix-vector product over a matrix far outside the last-level cache, which is how
  a decode step reads its weights; this is the spec's memory bandwidth (one CPU core reads slower than a
  copy's read + write figure suggests);
- copy bandwidth (bytes read + written) with a working set far outside the last-level cache and one well
  inside it (small models' weights fit there and beat the DRAM roofline);
- the fixed cost of one small op (kernel launch on CUDA, dispatch on CPU).
Each figure is the median of timed repeats after a warm-up.
"""
import statistics

import torch

from bench.build import TORCH_DTYPES
from theory.hardware import HardwareSpec

MATMUL_SHAPES = {"cpu": ((256, 1024, 1024), (1024, 1024, 1024), (1024, 1024, 4096)),
                 "cuda": ((2048, 4096, 4096), (4096, 4096, 4096), (8192, 8192, 8192))}      # (m, k, n)
GEMV_BYTES = {"cpu": 256 * 2**20, "cuda": 2 * 2**30}
DRAM_COPY_BYTES = {"cpu": 256 * 2**20, "cuda": 2 * 2**30}
CACHE_COPY_BYTES = 1 * 2**20


def _median_time(device, fn, repeats: int, inner: int = 1) -> float:
    fn()
    device.sync()
    samples = []
    for _ in range(repeats):
        t = device.start()
        for _ in range(inner):
            fn()
        samples.append(device.stop(t) / inner)
    return statistics.median(samples)


def matmul_flops_per_s(device, dtype: str, repeats: int = 5) -> dict[str, float]:
    out = {}
    dt = TORCH_DTYPES[dtype]
    for m, k, n in MATMUL_SHAPES[device.kind]:
        x = torch.rand(m, k, device=device.torch_device, dtype=dt)
        w = torch.rand(n, k, device=device.torch_device, dtype=dt)
        t = _median_time(device, lambda: torch.nn.functional.linear(x, w), repeats)
        out[f"{m}x{k}x{n}"] = 2 * m * k * n / t
    return out


def gemv_read_bytes_per_s(device, dtype: str, repeats: int = 5) -> float:
    """Weight bytes a matrix-vector product streams per second (matrix far outside the cache)."""
    dt = TORCH_DTYPES[dtype]
    k = 4096
    n = GEMV_BYTES[device.kind] // (k * torch.tensor([], dtype=dt).element_size())
    w = torch.rand(n, k, device=device.torch_device, dtype=dt)
    x = torch.rand(1, k, device=device.torch_device, dtype=dt)
    t = _median_time(device, lambda: torch.nn.functional.linear(x, w), repeats)
    return w.numel() * w.element_size() / t


def copy_bytes_per_s(device, total_bytes: int, repeats: int = 5) -> float:
    """Bytes read + written per second by a tensor copy of total_bytes/2 each way."""
    n = total_bytes // 2 // 4
    src = torch.rand(n, device=device.torch_device)
    dst = torch.empty_like(src)
    inner = max(1, (64 * 2**20) // total_bytes)       # small copies: several per sample
    t = _median_time(device, lambda: dst.copy_(src), repeats, inner)
    return 2 * n * 4 / t


def op_overhead_s(device, repeats: int = 9) -> float:
    """Per-op fixed cost: a one-element add, timed over many calls."""
    x = torch.ones(1, device=device.torch_device)
    y = torch.ones(1, device=device.torch_device)
    out = torch.empty(1, device=device.torch_device)
    return _median_time(device, lambda: torch.add(x, y, out=out), repeats, inner=2000)


def measure_ceilings(device, dtype: str, host: str) -> tuple[HardwareSpec, dict]:
    mm = matmul_flops_per_s(device, dtype)
    gemv = gemv_read_bytes_per_s(device, dtype)
    dram = copy_bytes_per_s(device, DRAM_COPY_BYTES[device.kind])
    llc = device.info().get("llc_bytes")
    in_cache = copy_bytes_per_s(device, CACHE_COPY_BYTES)
    overhead = op_overhead_s(device)
    info = device.info()
    spec = HardwareSpec(
        id=f"measured-{device.kind}", name=f"{info['device_name']} ({host}, {device.threads} thread(s)) measured",
        peak_flops_per_s={dtype: max(mm.values())}, memory_bandwidth_bytes_per_s=gemv,
        memory_capacity_bytes=int(device.total_bytes()), launch_overhead_s=overhead,
        llc_bytes=llc, llc_bandwidth_bytes_per_s=in_cache if device.kind == "cpu" else None, kind=device.kind,
        source="measured by bench.ceilings in this run",
        notes=f"matmul: best of linear shapes {list(mm)}; memory bandwidth: matrix-vector weight streaming")
    detail = {"matmul_flops_per_s_by_shape": mm, "gemv_read_bytes_per_s": gemv,
              "copy_bytes_per_s_dram": dram, "copy_bytes_per_s_in_cache": in_cache,
              "dram_copy_working_set_bytes": DRAM_COPY_BYTES[device.kind],
              "cache_copy_working_set_bytes": CACHE_COPY_BYTES, "op_overhead_s": overhead}
    return spec, detail
