"""Ceilings with spread; the CUDA in-cache working set from the L2 size (a stand-in device, no GPU needed)."""
from types import SimpleNamespace

import torch

from bench import ceilings
from bench.device import CpuDevice


def test_cuda_in_cache_copy_is_sized_from_l2(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda, "get_device_properties",
                        lambda i: calls.append(i) or SimpleNamespace(L2_cache_size=50 * 2**20))
    dev = SimpleNamespace(kind="cuda", torch_device="cuda:1")
    assert ceilings.l2_bytes(dev) == 50 * 2**20 and calls == [1]
    assert ceilings.cache_copy_bytes(dev) == 25 * 2**20              # inside L2, far above a launch's worth
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
