"""The device's real ceilings in the run's dtype, stored in the shape of a theory HardwareSpec.

- matmul FLOP/s: the best of a few linear-layer shapes (x @ Wᵀ, 2·m·k·n FLOPs each);
- streaming read bandwidth: a matrix-vector product over a matrix far outside the last-level cache, which is how
  a decode step reads its weights; this is the spec's memory bandwidth (one CPU core reads slower than a
  copy's read + write figure suggests);
- copy bandwidth (bytes read + written) with a working set far outside the last-level cache and one well
  inside it (small models' weights fit there and beat the DRAM roofline);
- the fixed cost of one small op (kernel launch on CUDA, dispatch on CPU);
- on CPU, the effective last-level cache: matrix-vector read rates over working sets from 1 MiB to twice the
  reported LLC (a "memory mountain" slice, as lmbench and Bryant & O'Hallaron's CS:APP measure it). The reported
  size overstates what one process gets on a shared VM: here the rate falls halfway at 8-16 MiB of a
  reported 32 MiB. The kernel microbenchmarks use this size to decide whether a model's weights stay cached.
Each figure is timed after a warm-up by time (GPU clocks ramp over ~a second), then sampled with the same
stopping rule as the points (bench/timing/stats.py): until the 95% interval of the median is within ±2% or the
figure's budget is spent. The spec holds the medians; `spread` in the detail holds each interval, as rates.
On CUDA the in-cache copy's working set is half the L2 (the device's properties, L2_cache_size):
inside L2, and many copies are queued per sample so launches overlap execution instead of bounding it.
"""
import time

import torch

from bench.model import TORCH_DTYPES
from bench.timing.stats import StopRule, median_ci
from theory.hardware import HardwareSpec

# Size tables by the device's size class; "tiny" is the CPU stand-in of a CUDA device (bench/devices/fake.py):
# 4 MiB buffers and one 128x256x256 matmul, plumbing not numbers.
WARMUP_S = {"cpu": 0.1, "cuda": 1.0, "tiny": 0.1}
RULE = StopRule(min_repeats=6, max_repeats=40, max_point_s=0.6)     # per figure; 7 figures ≈ 5 s on one core
SPREAD: dict = {}                                  # figure name → its interval, filled by measure_ceilings

MATMUL_SHAPES = {"cpu": ((256, 1024, 1024), (1024, 1024, 1024), (1024, 1024, 4096)),
                 "cuda": ((2048, 4096, 4096), (4096, 4096, 4096), (8192, 8192, 8192)),
                 "tiny": ((128, 256, 256),)}                                                 # (m, k, n)
GEMV_BYTES = {"cpu": 256 * 2**20, "cuda": 2 * 2**30, "tiny": 4 * 2**20}
DRAM_COPY_BYTES = {"cpu": 256 * 2**20, "cuda": 2 * 2**30, "tiny": 4 * 2**20}
CACHE_COPY_BYTES = 1 * 2**20
LLC_SWEEP_MIB = (1, 2, 4, 6, 8, 12, 16, 24, 32, 48, 64)
LLC_SWEEP_S = 0.12                                 # per working set: ~1.5 s for the sweep on one core


def _median_time(device, fn, repeats: int = 0, inner: int = 1, name: str | None = None) -> float:
    """Median seconds per call of fn; with `name`, its interval is kept in SPREAD. (repeats: kept for callers;
    the stopping rule decides how many samples are taken.)"""
    t0 = time.perf_counter()
    while True:                                    # warm up by time, at least one call
        fn()
        device.sync()
        if time.perf_counter() - t0 >= WARMUP_S.get(device.size_class, 0.1):
            break
    samples, t0 = [], time.perf_counter()
    while True:
        t = device.start()
        for _ in range(inner):
            fn()
        samples.append(device.stop(t) / inner)
        elapsed = time.perf_counter() - t0
        if RULE.done([samples], elapsed, elapsed / len(samples)):
            break
    ci = median_ci(samples)
    if name:
        SPREAD[name] = ci
    return ci.median_s


def matmul_flops_per_s(device, dtype: str, repeats: int = 5) -> dict[str, float]:
    out = {}
    dt = TORCH_DTYPES[dtype]
    for m, k, n in MATMUL_SHAPES[device.size_class]:
        x = torch.rand(m, k, device=device.torch_device, dtype=dt)
        w = torch.rand(n, k, device=device.torch_device, dtype=dt)
        t = _median_time(device, lambda: torch.nn.functional.linear(x, w), repeats, name=f"matmul_{m}x{k}x{n}")
        out[f"{m}x{k}x{n}"] = 2 * m * k * n / t
    return out


def gemv_read_bytes_per_s(device, dtype: str, repeats: int = 5) -> float:
    """Weight bytes a matrix-vector product streams per second (matrix far outside the cache)."""
    dt = TORCH_DTYPES[dtype]
    k = 4096
    n = GEMV_BYTES[device.size_class] // (k * torch.tensor([], dtype=dt).element_size())
    w = torch.rand(n, k, device=device.torch_device, dtype=dt)
    x = torch.rand(1, k, device=device.torch_device, dtype=dt)
    t = _median_time(device, lambda: torch.nn.functional.linear(x, w), repeats, name="gemv_read")
    return w.numel() * w.element_size() / t


def copy_bytes_per_s(device, total_bytes: int, repeats: int = 5, name: str | None = None) -> float:
    """Bytes read + written per second by a tensor copy of total_bytes/2 each way."""
    n = total_bytes // 2 // 4
    src = torch.rand(n, device=device.torch_device)
    dst = torch.empty_like(src)
    inner = max(1, (64 * 2**20) // total_bytes)       # small copies: several per sample
    if device.kind == "cuda":
        inner = max(inner, 200)                       # queued back to back: the launch overlaps the copy before it
    t = _median_time(device, lambda: dst.copy_(src), repeats, inner, name=name)
    return 2 * n * 4 / t


def op_overhead_s(device, repeats: int = 9) -> float:
    """Per-op fixed cost: a one-element add, timed over many calls."""
    x = torch.ones(1, device=device.torch_device)
    y = torch.ones(1, device=device.torch_device)
    out = torch.empty(1, device=device.torch_device)
    return _median_time(device, lambda: torch.add(x, y, out=out), repeats, inner=2000, name="op_overhead")


def llc_sweep(device, dtype: str, llc_bytes: int | None) -> dict | None:
    """Read rate (bytes/s, median over ~LLC_SWEEP_S of calls) of x @ Wᵀ with W of each working set, re-read
    from the same W so that it stays cached if it fits; and the effective LLC: the largest working set, from the
    fastest set up, whose rate is still at least the geometric mean of the sweep's best rate and the largest
    set's (twice the reported LLC: DRAM), both taken in the same sweep: half the in-cache advantage, in log terms,
    gone. None on CUDA (L2 comes from the device's properties there)."""
    if device.kind != "cpu":
        return None
    dt = TORCH_DTYPES[dtype]
    size = torch.tensor([], dtype=dt).element_size()
    k = 1024
    top = 2 * (llc_bytes or 32 * 2**20)
    sizes, rates = [], []
    for mib in LLC_SWEEP_MIB:
        ws = mib * 2**20
        if ws > top:
            break
        w = torch.rand(ws // (k * size), k, dtype=dt)
        x = torch.rand(1, k, dtype=dt)
        for _ in range(3):
            torch.nn.functional.linear(x, w)
        ts, t0 = [], time.perf_counter()
        while len(ts) < 5 or time.perf_counter() - t0 < LLC_SWEEP_S:
            t = time.perf_counter()
            torch.nn.functional.linear(x, w)
            ts.append(time.perf_counter() - t)
        sizes.append(w.numel() * size)
        rates.append(w.numel() * size / sorted(ts)[len(ts) // 2])
        del w
    return {"sizes_bytes": sizes, "read_bytes_per_s": rates,
            "effective_bytes": effective_llc_bytes(sizes, rates, rates[-1])}


def effective_llc_bytes(sizes: list[int], rates: list[float], dram_read_bytes_per_s: float) -> int | None:
    """The largest working set, scanning up from the one read fastest, whose read rate is ≥ √(best rate × DRAM
    rate). The scan starts at the peak, not the smallest set: the smallest sets can read slower than the peak
    (per-call overhead, the first calls' page faults; 19 of 41 GB/s at 1 MiB here), which says nothing about
    where the cache ends. None only without a sweep."""
    if not sizes:
        return None
    best = max(range(len(rates)), key=rates.__getitem__)
    bar = (rates[best] * dram_read_bytes_per_s) ** 0.5
    fits = sizes[best]
    for ws, r in zip(sizes[best:], rates[best:]):
        if r < bar:
            break
        fits = ws
    return fits


def l2_bytes(device) -> int | None:
    """The GPU's L2 size from the device properties (bytes); None on CPU or where torch does not report it."""
    if device.kind != "cuda":
        return None
    return device.info().get("l2_cache_bytes") or None       # CudaDevice: its own properties, through the seam


def cache_copy_bytes(device) -> int:
    """The in-cache copy's working set: half the L2 on CUDA (inside it, far above a launch's worth of work);
    1 MiB on CPU (inside L2/LLC)."""
    l2 = l2_bytes(device)
    return l2 // 2 if l2 else CACHE_COPY_BYTES


def spread_as_rates(work: dict[str, float]) -> dict:
    """SPREAD's time intervals turned into rates (work / time): the low rate comes from the high time."""
    out = {}
    for name, ci in SPREAD.items():
        w = work.get(name, 1.0)
        rate = name != "op_overhead"
        out[name] = {"median": w / ci.median_s if rate else ci.median_s,
                     "ci_low": w / ci.high_s if rate else ci.low_s, "ci_high": w / ci.low_s if rate else ci.high_s,
                     "samples": ci.n, "target_met": ci.met(RULE.target_rel),
                     "unit": "s" if not rate else ("flops_per_s" if name.startswith("matmul") else "bytes_per_s")}
    return out


def measure_ceilings(device, dtype: str, host: str) -> tuple[HardwareSpec, dict]:
    SPREAD.clear()
    mm = matmul_flops_per_s(device, dtype)
    gemv = gemv_read_bytes_per_s(device, dtype)
    dram = copy_bytes_per_s(device, DRAM_COPY_BYTES[device.size_class], name="copy_dram")
    llc = device.info().get("llc_bytes")
    cache_bytes = cache_copy_bytes(device)
    in_cache = copy_bytes_per_s(device, cache_bytes, name="copy_in_cache")
    overhead = op_overhead_s(device)
    sweep = llc_sweep(device, dtype, llc)
    info = device.info()
    spec = HardwareSpec(
        id=f"measured-{device.kind}", name=f"{info['device_name']} ({host}, {device.threads} thread(s)) measured",
        peak_flops_per_s={dtype: max(mm.values())}, memory_bandwidth_bytes_per_s=gemv,
        memory_capacity_bytes=int(device.total_bytes()), launch_overhead_s=overhead,
        llc_bytes=llc, llc_bandwidth_bytes_per_s=in_cache if device.kind == "cpu" else None,
        kind="gpu" if device.kind == "cuda" else device.kind,          # theory's kinds: "gpu" | "cpu"
        source="measured by bench.ceilings in this run",
        notes=f"matmul: best of linear shapes {list(mm)}; memory bandwidth: matrix-vector weight streaming")
    detail = {"matmul_flops_per_s_by_shape": mm, "gemv_read_bytes_per_s": gemv,
              "copy_bytes_per_s_dram": dram, "copy_bytes_per_s_in_cache": in_cache,
              "dram_copy_working_set_bytes": DRAM_COPY_BYTES[device.size_class],
              "cache_copy_working_set_bytes": cache_bytes, "op_overhead_s": overhead, "l2_cache_bytes": l2_bytes(device),
              "llc_effective_bytes": sweep["effective_bytes"] if sweep else None, "llc_read_sweep": sweep}
    work = {f"matmul_{k}": 2 * _mkn(k) for k in mm}
    work.update({"gemv_read": gemv * SPREAD["gemv_read"].median_s,
                 "copy_dram": dram * SPREAD["copy_dram"].median_s, "copy_in_cache": in_cache * SPREAD["copy_in_cache"].median_s})
    detail["spread"] = spread_as_rates(work)
    return spec, detail


def _mkn(shape: str) -> int:
    m, k, n = (int(v) for v in shape.split("x"))
    return m * k * n


def drift(start: dict, end: dict) -> dict:
    """end / start for each figure measured twice (a box that got slower mid-run shows rates below 1)."""
    a, b = start.get("spread", {}), end.get("spread", {})
    return {k: b[k]["median"] / a[k]["median"] for k in a if k in b and a[k]["median"]}
