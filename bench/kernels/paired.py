"""A point's kernels and framework timed beside the model they predict: after every timed repeat of the point, one
round takes one sample of each kernel the point runs, one trajectory of its tiny model and one sample of each
yardstick (the same few kernels at every point: bench/kernels/yardstick.py). The rounds the
composed prediction uses are those after the repeats the point's statistics use, so the whole and its pieces are
measured in the same seconds.

Why: this box changes speed by 0.5-2x within minutes. The same kernels timed in two back-to-back runs (results/
20261123T1333*, T1343*, committed at 78776f1) differed by 0.70x at the 10th percentile and 1.43x at the 90th, and
a kernel timed once and reused (the per-box cache, bench/kernels/cache.py) carries whatever speed the box had then.
Timed in rounds, a kernel's median spans the same minutes as the model's repeats.

Each kernel is timed as bench.kernels.microbench times it alone (same operands, cache state, copies rotated for a
"dram" point); only the spacing of its samples differs. The tiny model is bench.kernels.framework's.
"""
import gc
import time

import torch

from bench.model import build_model
from bench.kernels.cache import kernel_id, kernel_row
from bench.kernels.framework import framework_table, tiny_spec
from bench.kernels.microbench import KernelSampler
from bench.kernels.plan import compose_rows, kernel_sums, needed, passes
from bench.kernels.rounds import round_rows
from bench.kernels.yardstick import Yardsticks
from bench.profiling.dispatch import count_dispatches
from bench.timing.trajectory import run_trajectory

SOURCE = "paired"


class PairedKernels:
    """Per point: prepare() before the repeats, round() after each repeat, parts(used) at the end, close()."""

    def __init__(self, p, point_id: str, device, dtype: str, state: str, llc_bytes: int | None):
        self.p, self.point_id, self.device, self.dtype = p, point_id, device, dtype
        self.state, self.llc_bytes = state, llc_bytes
        spec = p.spec()
        self.shapes = passes(spec, p.batch, p.prompt_len, p.generated, dtype, p.attention, p.cache, p.max_cache_len)
        self.tiny = tiny_spec(spec)
        self.tiny_shapes = passes(self.tiny, p.batch, p.prompt_len, p.generated, dtype, p.attention, p.cache,
                                  p.max_cache_len)
        self.kernels: dict[str, tuple] = {}
        for k, st in needed(self.shapes, state) + needed(self.tiny_shapes, "llc"):
            self.kernels.setdefault(kernel_id(k, st), (k, st))
        self.samplers: dict[str, KernelSampler] = {}
        self.samples: dict[str, list[float]] = {kid: [] for kid in self.kernels}
        self.tiny_times: list[list[float]] = []
        self.yardsticks: Yardsticks | None = None    # the box's speed read in the same rounds (yardstick.py)
        self.model = self.ids = self.rewarm = None
        self.used: list[int] = []                    # set by bench/point/measure.py: the repeats its statistics use
        self.rounds_s = 0.0

    def prepare(self, rewarm=None) -> None:
        """rewarm(): one untimed pass of the point's model, run after each round when the model fits the last-level
        cache ("llc"), so its next timed trajectory finds its weights where back-to-back repeats would.
        Nothing is allocated until the first round: the point's cold trajectory and memory probe run without it."""
        self.rewarm = rewarm if self.state == "llc" else None

    def _build(self) -> None:
        """The tiny model and every kernel's operands; each runs once (lazy init, algorithm choice)."""
        self.model = build_model(self.tiny, self.device.torch_device, self.dtype, self.p.attention)
        gen = torch.Generator(device="cpu").manual_seed(1)
        self.ids = torch.randint(0, self.tiny.vocab_size, (self.p.batch, self.p.prompt_len),
                                 generator=gen).to(self.device.torch_device)
        self._tiny()
        for kid, (k, st) in self.kernels.items():
            self.samplers[kid] = KernelSampler(k, self.device, st, self.llc_bytes)
        self.yardsticks = Yardsticks(self.device, self.dtype, self.llc_bytes)

    def _tiny(self) -> list[float]:
        return run_trajectory(self.model, self.device, self.ids, self.p.generated, self.p.cache,
                              self.p.max_cache_len).times_s

    def round(self) -> None:
        """One tiny trajectory, one sample of every kernel and of every yardstick (the first round builds them)."""
        t0 = time.perf_counter()
        if self.model is None:
            self._build()
        self.tiny_times.append(self._tiny())
        for kid, s in self.samplers.items():
            self.samples[kid].append(s.sample())
        self.yardsticks.round()
        if self.rewarm is not None:
            self.rewarm()
        self.rounds_s += time.perf_counter() - t0

    def parts(self, used: list[int]) -> dict[str, list[dict]]:
        """compose, framework and kernels rows over the rounds after the repeats in `used` (indices)."""
        table = RoundTable(self.samplers, self.samples, used)
        compose = compose_rows(self.point_id, self.shapes, table, self.state)
        n_dispatch = count_dispatches(self.model, self.ids, self.p.cache, self.p.max_cache_len)
        tiny = kernel_sums(compose_rows(self.point_id, self.tiny_shapes, table, "llc"))
        framework = framework_table(self.point_id, [self.tiny_times[i] for i in used], tiny, n_dispatch)
        used_ids = {r["kernel_id"] for r in compose}
        kernels = [r for kid, r in table.rows.items() if kid in used_ids]
        for r in compose:
            r["kernels_wall_s"] = self.rounds_s
        rounds = round_rows(self.point_id, {kid: xs for kid, xs in self.samples.items()}, self.tiny_times, used,
                            self.yardsticks.samples if self.yardsticks else None)
        return {"compose": compose, "framework": framework, "kernels": kernels, "rounds": rounds}

    def close(self) -> None:
        """Operand copies and the tiny model handed back before the next point checks free memory."""
        self.samplers.clear()
        self.model = self.ids = self.rewarm = self.yardsticks = None
        gc.collect()
        self.device.empty_cache()


class RoundTable:
    """What compose_rows asks a kernel cache for (need, get), answered from rounds of samples: each kernel's row is
    its sampler's result over the rounds in `used`. A kernel no sampler holds is asked of `fallback` (a KernelCache;
    None: there is none). `source` names where the rows came from (kernels.csv)."""

    def __init__(self, samplers: dict, samples: dict, used: list[int], fallback=None, source: str = SOURCE):
        self.samplers, self.samples, self.used, self.fallback, self.source = samplers, samples, used, fallback, source
        self.rows: dict[str, dict] = {}

    def need(self, kernels, check: bool = True) -> None:
        pass

    def get(self, k, cache_state: str) -> dict:
        kid = kernel_id(k, cache_state)
        if kid not in self.rows:
            if kid in self.samplers or self.fallback is None:
                xs = [self.samples[kid][i] for i in self.used]
                self.rows[kid] = kernel_row(k, cache_state, self.samplers[kid].result(xs), self.source, "")
            else:
                self.rows[kid] = self.fallback.get(k, cache_state)
        return self.rows[kid]
