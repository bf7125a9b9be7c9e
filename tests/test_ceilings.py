"""Ceilings with spread; the CUDA in-cache working set from the L2 size (a stand-in device, no GPU needed)."""
from types import SimpleNamespace

import torch

from bench import ceilings
from bench.devices.cpu import CpuDevice


def test_cuda_in_cache_copy_is_sized_from_l2():
    """The L2 size comes from the device's own properties, through the device seam (CudaDevice.info(), which the
    CUDA stand-in fakes), never from torch.cuda directly."""
    from bench.devices import fake
    dev = fake.standin_device()
    l2 = dev.cuda.get_device_properties(0).L2_cache_size
    assert l2 and ceilings.l2_bytes(dev) == l2
    assert ceilings.cache_copy_bytes(dev) == l2 // 2                # inside L2, far above a launch's worth
    cpu = SimpleNamespace(kind="cpu", torch_device="cpu")
    assert ceilings.l2_bytes(cpu) is None and ceilings.cache_copy_bytes(cpu) == ceilings.CACHE_COPY_BYTES


def test_timed_figure_has_an_interval_and_drift_is_a_ratio(monkeypatch):
    monkeypatch.setattr(ceilings, "RULE", ceilings.StopRule(6, 8, 0.5))
    ceilings.SPREAD.clear()
    x = torch.ones(1)
    t = ceilings._median_time(CpuDevice(threads=1), lambda: torch.add(x, x), inner=100, name="op_overhead")
    ci = ceilings.SPREAD["op_overhead"]
    assert ci.n >= 6 and ci.low_s <= t <= ci.high_s
    start = {"spread": {"copy_dram": {"median": 10.0}, "op_overhead": {"median": 2.0}}}
    end = {"spread": {"copy_dram": {"median": 8.5}}}
    assert ceilings.drift(start, end) == {"copy_dram": 0.85}


def test_effective_llc_is_where_the_read_rate_falls_halfway_to_dram():
    """The rate measured here: ~40 GB/s up to 12 MiB, 20 at 16 MiB, ~9 beyond, of a reported 32 MiB LLC."""
    from bench.ceilings import effective_llc_bytes
    mib = 2**20
    sizes = [s * mib for s in (1, 2, 4, 8, 12, 16, 24, 32, 64)]
    rates = [36e9, 40e9, 40e9, 39e9, 40e9, 17e9, 11e9, 9e9, 9e9]
    assert effective_llc_bytes(sizes, rates, rates[-1]) == 12 * mib          # √(40·9) = 19 GB/s: 16 MiB is below
    assert effective_llc_bytes(sizes, [9e9] * len(sizes), 9e9) == 64 * mib   # flat: no drop seen in the sweep
    slow_start = [19e9, 20e9, 41e9, 36e9, 29e9, 16e9, 11e9, 12e9, 12e9]  # as the unseen-cpu run read (B/s)
    assert effective_llc_bytes(sizes, slow_start, 12e9) == 12 * mib      # scanned from the 4 MiB peak, not 1 MiB
    assert effective_llc_bytes([], [], 12e9) is None
