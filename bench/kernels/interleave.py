"""The calibration and the model in the same minutes: rounds of the calibration's kernels around the model's
trajectories (A B A ... A).

`python -m bench.kernels.versus --calibrate-from` plans the calibration of the other models as
`python -m bench kernels` would (the same kernels, cache states and operands, bench/kernels/calibrate.py), but
times it in rounds, as a sweep point's paired kernels are (bench/kernels/paired.py): one round takes one sample of
every kernel; `rounds` rounds run before the model's first timed trajectory and again after each one. A kernel's
time is the median over all its rounds, so the kernels the prediction rests on span the minutes the model ran in.

Why rounds: on this box one decode linear timed alone in a burst (up_proj of d=1536, 25 MB of fp32 weights) read
1.4 ms in some bursts and 2.0-2.1 ms in others, six bursts in a row, whether it rotated 3 or 43 copies (measured
2026-12-02, docs/calibration.md), and the same kernel sampled once per round over 30 rounds spread 1.31-2.22 ms.
A calibration of bursts timed a minute before the model carries whichever level those seconds had: six tries
against one calibration (results/never-built-20261202) were 10-35% off in TPOT.

The framework's own cost (bench/kernels/framework.py: a tiny model of the workload's structure, its pass minus its
own kernels) is sampled in the rounds too: one tiny trajectory per workload per round, and the tiny kernels among
the round's samplers, so a calibration's framework is the median over its rounds' tiny passes minus the median of
its rounds' tiny kernels. Measured once at the start (before 2026-12-03 evening), d=1536 L=8's decode framework
read 3.7, 4.9, 14.4 and 4.4 ms in four tries within an hour, and the fit over depth carried the 14.4 into
tinyllama's prediction (`row-length-1/`, try 2: framework own over predicted −69%). The target model's own
measurements never enter a calibration; with `--own-kernels` its own kernels
are sampled in the same rounds and kept apart, a witness the prediction is split against
(theory/calibration/against.py).
"""
import statistics
import time

import torch

from bench.ceilings import llc_sweep
from bench.kernels.cache import KernelCache, kernel_id
from bench.kernels.calibrate import calibration, stamped, state_of
from bench.kernels.framework import framework_table, tiny_spec
from bench.kernels.microbench import KernelSampler
from bench.kernels.paired import RoundTable
from bench.kernels.plan import compose_rows, kernel_sums, needed, passes
from bench.kernels.point import llc_of
from bench.model import build_model
from bench.profiling.dispatch import count_dispatches
from bench.timing import trajectory as tiny_timing             # the tiny models' runs, apart from the target's
from bench.timing.trajectory import run_trajectory
from theory.calibration.merge import merge
from theory.memory import weight_bytes

SOURCE = "interleaved"
GIB = 2**30
HEADROOM = 1.25                   # the target's weights, plus activations, cache and the allocator's slack
HEADROOM_FLOOR_BYTES = 2 * GIB
TINY_STATE = "llc"                # the tiny models' kernels: as bench/kernels/framework.py times them


class TinyFramework:
    """One workload's tiny framework model (bench/kernels/framework.py), built once; one trajectory per round."""

    def __init__(self, p, device, dtype: str):
        self.p, self.device = p, device
        self.spec = tiny_spec(p.spec())
        self.model = build_model(self.spec, device.torch_device, dtype, p.attention)
        gen = torch.Generator(device="cpu").manual_seed(1)
        self.ids = torch.randint(0, self.spec.vocab_size, (p.batch, p.prompt_len), generator=gen).to(
            device.torch_device)
        self.shapes = passes(self.spec, p.batch, p.prompt_len, p.generated, dtype, p.attention, p.cache,
                             p.max_cache_len)
        self.times: list[list[float]] = []                                   # one trajectory per round
        self.trajectory()                                                    # warm: lazy init, allocator
        self.n_dispatch = count_dispatches(self.model, self.ids, p.cache, p.max_cache_len)

    def kernels(self) -> list[tuple]:
        return needed(self.shapes, TINY_STATE)

    def trajectory(self) -> list[float]:
        return tiny_timing.run_trajectory(self.model, self.device, self.ids, self.p.generated, self.p.cache,
                              self.p.max_cache_len).times_s

    def framework(self, table, used: list[int]) -> dict:
        """(phase, step) -> the framework's cost over the rounds in `used`: their tiny passes' median minus the tiny
        kernels' medians over the same rounds (table: a RoundsTable of those rounds)."""
        sums = kernel_sums(compose_rows("calibration", self.shapes, table, TINY_STATE))
        return {(r["phase"], r["step"]): r["framework_s"]
                for r in framework_table("calibration", [self.times[i] for i in used], sums, self.n_dispatch)}


class CalibrationRounds:
    """Every kernel of the calibration models' workloads, sampled one round at a time."""

    def __init__(self, device, per_model, dtype: str, keep_free_bytes: int = 0, own=None, full: bool = False):
        """keep_free_bytes: what must stay free while the samplers are built (the target's weights, with headroom);
        a calibration that would eat into it is refused in one line before the model is built.
        own: the target's own workloads (versus --own-kernels), whose kernels are sampled in the same rounds and
        kept apart: calibration() never reads them, own_calibration() reads nothing else.
        full: build every calibration model too (random weights) for full_passes() (versus --full-passes)."""
        self.device, self.per_model, self.dtype, self.own = device, per_model, dtype, own
        self.keep_free_bytes = keep_free_bytes
        self.t0 = time.perf_counter()
        self.kcache = KernelCache(None, device, llc_of(device))       # the box's LLC; no kernel is timed into it
        sweep = llc_sweep(device, dtype, self.kcache.llc_bytes)       # CPU: the effective LLC (~2 s); CUDA: None
        self.kcache.fits_bytes = (sweep or {}).get("effective_bytes") or self.kcache.llc_bytes
        self.kernels: dict[str, tuple] = {}
        for points in per_model + ([own] if own else []):
            for p in points:
                shapes = passes(p.spec(), p.batch, p.prompt_len, p.generated, dtype, p.attention, p.cache,
                                p.max_cache_len)
                for k, st in needed(shapes, state_of(p, dtype, self.kcache, "auto")):
                    self.kernels.setdefault(kernel_id(k, st), (k, st))
        self.tiny = [[TinyFramework(p, device, dtype) for p in points] for points in per_model]
        self.own_tiny = [TinyFramework(p, device, dtype) for p in own] if own else None
        for t in [t for ts in self.tiny for t in ts] + (self.own_tiny or []):
            for k, st in t.kernels():
                self.kernels.setdefault(kernel_id(k, st), (k, st))
        self.samplers = {}
        also = " and the calibration models' (--full-passes)" if full else ""
        for kid, (k, st) in self.kernels.items():    # every sampler's copies stay live beside the target model
            if device.free_bytes() < self.keep_free_bytes:
                raise ValueError(
                    f"the calibration's kernel operands leave {device.free_bytes() / GIB:.1f} GiB free after "
                    f"{len(self.samplers)} of {len(self.kernels)} kernels, and the target's weights{also} need "
                    f"{self.keep_free_bytes / GIB:.1f} GiB with headroom: calibrate from smaller models")
            self.samplers[kid] = KernelSampler(k, device, st, self.kcache.llc_bytes)
        self.samples: dict[str, list[float]] = {kid: [] for kid in self.kernels}
        self.rounds = 0
        self.round_times: list[tuple[str, float]] = []      # per round: UTC at its start, seconds it took
        self.models = []                                     # with full: each calibration model, built once
        self.full_runs: list[tuple[int, int, int, list[float]]] = []   # (last round before it, model, workload, times)
        for points in per_model if full else []:
            spec = points[0].spec()
            model = build_model(spec, device.torch_device, dtype, points[0].attention)
            for p in points:                                 # warm-up: lazy init, allocator
                run_trajectory(model, device, self._ids(p), p.generated, p.cache, p.max_cache_len)
            self.models.append(model)

    def _ids(self, p):
        spec = p.spec()
        ids = torch.randint(0, spec.vocab_size, (p.batch, p.prompt_len), generator=torch.Generator().manual_seed(0))
        return ids.to(self.device.torch_device)

    def full_passes(self) -> None:
        """One trajectory of every calibration workload on its own model, after the rounds so far: its passes minus
        their kernels and framework are the calibration's residual_s (calibration())."""
        for j, (points, model) in enumerate(zip(self.per_model, self.models)):
            for i, p in enumerate(points):
                t = run_trajectory(model, self.device, self._ids(p), p.generated, p.cache, p.max_cache_len).times_s
                self.full_runs.append((self.rounds - 1, j, i, t))

    def round(self) -> None:
        t0, utc = time.perf_counter(), time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        for kid, s in self.samplers.items():
            self.samples[kid].append(s.sample())
        for t in [t for ts in self.tiny for t in ts] + (self.own_tiny or []):
            t.times.append(t.trajectory())                     # the framework: one tiny trajectory per round
        self.rounds += 1
        self.round_times.append((utc, time.perf_counter() - t0))

    def calibration(self, rounds: list[int]) -> dict:
        """The calibration (bench kernels' format) from the samples of `rounds` (indices) only; with full passes,
        each pass with its residual_s from the full passes right after those rounds (_residuals)."""
        return self._calibration(self.per_model, self.tiny, rounds, residuals=bool(self.full_runs))

    def _residuals(self, cal: dict, j: int, used: set[int]) -> None:
        """Model j's calibrated passes (`cal`, before any merge: matched by index, not name) get residual_s: the
        median over model j's full passes that ran right after one of `used`'s rounds of the pass's time (index 0
        the prefill, 1 + s decode step s), minus its kernels (from the same rounds) and its framework cost."""
        where = {(p.batch, p.prompt_len): i for i, p in enumerate(self.per_model[j])}
        for cp in cal["passes"]:
            i = where.get((cp["batch"], cp["prompt_len"]))
            runs = [t for r, jj, ii, t in self.full_runs if r in used and (jj, ii) == (j, i)]
            if not runs:
                continue
            step = 0 if cp["phase"] == "prefill" else 1 + cp["context_len"] - cp["prompt_len"]
            full_s = statistics.median(t[step] for t in runs)
            kernels_s = sum(o["count"] * o["kernel_s"] for o in cp["ops"].values())
            cp.update(full_pass_s=full_s, full_passes=len(runs), residual_s=full_s - kernels_s - cp["framework_s"])

    def own_calibration(self, rounds: list[int]) -> dict:
        """The target's own kernels and framework from the samples of `rounds`: the witness, never a prediction's
        input (--own-kernels)."""
        if not self.own:
            raise ValueError("no own workloads were planned")
        return self._calibration([self.own], [self.own_tiny], rounds)

    def _calibration(self, per_model, tiny, rounds: list[int], residuals: bool = False) -> dict:
        table = RoundsTable(self, rounds)
        cals = [calibration(points, self.device, self.dtype, table, "auto", [t.framework(table, rounds) for t in ts])
                for points, ts in zip(per_model, tiny)]
        for j, c in enumerate(cals if residuals else []):
            self._residuals(c, j, set(rounds))
        cal = stamped(merge(cals) if len(cals) > 1 else cals[0], self.device, table, self.t0)
        spent_s = sum(self.round_times[i][1] for i in rounds)
        # the rounds' own time and start, not the whole try's (which holds the model's build and trajectories)
        return {**cal, "rounds": len(rounds), "utc_time": self.round_times[rounds[0]][0], "wall_s": spent_s,
                "kernels": {**cal["kernels"], "measured_s": spent_s}}


class RoundsTable(RoundTable):
    """The calibration models' and the tiny framework models' kernels from the rounds, with what a calibration
    reads of a kernel cache besides (bench/kernels/calibrate.py)."""

    def __init__(self, rounds: CalibrationRounds, used: list[int]):
        super().__init__(rounds.samplers, rounds.samples, used, rounds.kcache, SOURCE)
        self.llc_bytes, self.fits_bytes = rounds.kcache.llc_bytes, rounds.kcache.fits_bytes
        self.measured_s = 0.0

    def report(self) -> dict:
        return {}


def interleaved(device, spec, per_model, dtype: str, batch: int, prompt_len: int, generated: int, repeats: int,
                rounds: int, attention: str = "sdpa", cache: str = "dynamic", say=None, settle: int = 1,
                own=None, full: bool = False) -> dict:
    """`rounds` rounds of the calibration's kernels before the model's first timed trajectory (after one warm-up)
    and after each of `repeats`; the calibrations pooled over every round, over the first gap's and over the
    last gap's (the A-B-A drift), over each gap's (`each_gap`) and over the two gaps around each trajectory
    (`around`: trajectory i's own A-B-A). say(text): progress, one line per step.

    settle: trajectories run after each gap's rounds and before the timed one, timed but not scored
    (`settle_runs`, one list per gap). The prediction is of the model's steady step, the one `bench run` times after
    its warm-ups, and the trajectory right after ~40 s of other models' kernels is not that step. Added after the
    d=1280 L=12 target read 7-13% slow against interleaved predictions while a steady `bench run` of it composed
    within 3% from its own kernels; keeping the settling trajectories' own times says, try by try, how much that
    first pass differs (2026-12-03, two sets: median x1.028 the timed TPOT over 36 gaps).

    own: the target's own workloads (bench.sweep Points), sampled in the same rounds; `own` in the answer is their
    calibration over every round, kept apart from the prediction's (CalibrationRounds).

    full: after each gap's rounds (the last one's too), one trajectory of every calibration model itself; each
    calibration's passes then carry residual_s, what those full-size passes cost beyond their kernels and
    framework, which theory fits over depth and adds to the target's prediction (theory/calibration/predict.py).
    Added after the target's own kernels, sampled in the same rounds, composed 3-11% under its measured TPOT (d=1280
    L=12, 2026-12-03), and 138 of the 187 batch-1 decode shapes of the 17 committed default runs read over their
    composition (median x1.036)."""
    say = say or (lambda text: None)
    models = [spec] + ([points[0].spec() for points in per_model] if full else [])
    keep = int(HEADROOM * sum(weight_bytes(m, dtype) for m in models)) + HEADROOM_FLOOR_BYTES
    cr = CalibrationRounds(device, per_model, dtype, keep, own, full)
    say(f"calibration planned: {len(cr.kernels)} kernels of {len(per_model)} model(s)"
        f"{' and the target (its own, kept apart)' if own else ''}, their tiny framework models built")
    t0 = time.perf_counter()
    model = build_model(spec, device.torch_device, dtype, attention)
    build_s = time.perf_counter() - t0
    ids = torch.randint(0, spec.vocab_size, (batch, prompt_len), generator=torch.Generator().manual_seed(0))
    ids = ids.to(device.torch_device)
    mcl = prompt_len + generated if cache == "static" else None
    run_trajectory(model, device, ids, generated, cache, mcl)                           # warm-up
    runs, gaps, settles = [], [], []
    for i in range(repeats + 1):
        t = time.perf_counter()
        gaps.append(list(range(cr.rounds, cr.rounds + rounds)))
        for _ in range(rounds):
            cr.round()                                                                  # A
        say(f"kernel rounds {i + 1}/{repeats + 1}: {rounds} in {time.perf_counter() - t:.1f} s")
        if full:
            cr.full_passes()                                                            # the calibration models
        if i < repeats:
            settles.append([run_trajectory(model, device, ids, generated, cache, mcl).times_s
                            for _ in range(settle)])                         # settling: timed, kept, not scored
            runs.append(run_trajectory(model, device, ids, generated, cache, mcl).times_s)   # B
            say(f"model trajectory {i + 1}/{repeats}: prefill {runs[-1][0] * 1e3:.1f} ms")
    every = [r for g in gaps for r in g]
    each_gap = [cr.calibration(g) for g in gaps]
    return {"runs": runs, "settle_runs": settles, "build_s": build_s, "pooled": cr.calibration(every),
            "first": each_gap[0], "last": each_gap[-1], "gaps": gaps, "each_gap": each_gap,
            "around": [cr.calibration(a + b) for a, b in zip(gaps, gaps[1:])],
            "own": cr.own_calibration(every) if own else None}
