"""Yardsticks: the same few kernels and one dispatch probe, sampled once in every paired round of every point
(bench/kernels/paired.py), so that how fast the box ran during a point is read the way the point's own kernels and
framework cost are read: a median over the same rounds, in the same seconds.

Why not the canary alone: a canary reading is the fastest of five timings (bench/timing/canary.py), blind to short
bursts by design, while a kernel's median over rounds and the tiny model's median move with them. In the committed
run 20261202T042643Z the d=512 L=1 point's kernels ran ~1.4x slower than the same ops at L=2 and L=4 (its RMSNorm
47 µs against 30) while its canary read x1.10; in 20261202T041952Z the framework cost of one structure (L=4,
batch 1, dynamic cache) spread 0.35-0.93 ms over the run while the canary stayed within x0.83-1.06. Leave-one-out
scales the other points' kernels and framework by what these read (analysis/yardstick.py).

The set is fixed by kind, not chosen by a score: one decode linear streamed from DRAM (512 → 1536, one token), one
warm RMSNorm (64 tokens × 512) and one warm sdpa decode core (8 heads, 4 kv heads, 64 keys, head_dim 64), timed as
bench.kernels.microbench times any kernel, and DISPATCH_CALLS one-element adds timed on the host clock: what one op
costs the framework's Python and dispatcher (on CUDA the launches queue, so this is the host's side only).
"""
import time

import torch

from bench.kernels.cache import kernel_id
from bench.kernels.microbench import KernelSampler
from bench.kernels.rounds import DISPATCH
from bench.kernels.shapes import Kernel

DISPATCH_CALLS = 200


def yardstick_kernels(dtype: str) -> list[tuple]:
    """(kernel, cache state) of the kernel yardsticks, in a fixed order."""
    k = lambda op, impl, **shape: Kernel(op, impl, dtype, tuple(shape.items()))
    return [(k("q_proj", "linear", tokens=1, k_in=512, k_out=1536), "dram"),
            (k("norm", "rmsnorm", tokens=64, hidden=512), "llc"),
            (k("attn_core", "sdpa", batch=1, heads=8, kv_heads=4, query=1, keys=64, head_dim=64, mask="none"),
             "llc")]


class DispatchProbe:
    """DISPATCH_CALLS adds of a one-element tensor: seconds per call on the host clock."""

    def __init__(self, device, clock=time.perf_counter):
        self.device, self.clock = device, clock
        self.x = torch.zeros(1, device=device.torch_device)
        self.out = torch.empty_like(self.x)
        self.sample()                                # first call: lazy init, never a reading

    def sample(self) -> float:
        self.device.sync()
        t = self.clock()
        for _ in range(DISPATCH_CALLS):
            torch.add(self.x, 1.0, out=self.out)
        return (self.clock() - t) / DISPATCH_CALLS


class Yardsticks:
    """One sample of each yardstick per call of round(); `samples` maps its name (a kernel id, or DISPATCH) to them."""

    def __init__(self, device, dtype: str, llc_bytes: int | None):
        self.samplers = {kernel_id(k, st): KernelSampler(k, device, st, llc_bytes)
                         for k, st in yardstick_kernels(dtype)}
        self.samplers[DISPATCH] = DispatchProbe(device)
        self.samples: dict[str, list[float]] = {name: [] for name in self.samplers}

    def round(self) -> None:
        for name, s in self.samplers.items():
            self.samples[name].append(s.sample())
