"""One point measured, top to bottom, as named steps: memory guard → build → time the repeats → probe →
profile → record; then its rows (bench/point/rows.py). A failure costs this point only: an `oom` or `error`
row, and the model is freed either way."""
import gc
import time
from dataclasses import dataclass

import torch

from bench import modes
from bench.model import build_model, hold_static_caches, weight_bytes as model_weight_bytes
from bench.point import rows
from bench.point.job import PointJob
from bench.profiling.compiled import save_compiled_profile
from bench.profiling.dispatch import count_ops
from bench.profiling.record import save_profile, traced_memory
from bench.profiling.syncs import count_hidden_syncs
from bench.store.repeats import write_point_meta
from bench.sweep import Point
from bench.timing import trajectory
from bench.timing.repeats import measure
from theory.dtypes import dtype_bytes
from theory.memory import kv_cache_bytes, weight_bytes

MEMORY_MARGIN = 1.2            # predicted need × margin must fit in what the device has free


def predicted_need_bytes(p: Point, dtype: str) -> int:
    spec = p.spec()
    total_tokens = p.prompt_len + p.generated
    kv = kv_cache_bytes(spec, p.batch, total_tokens, dtype)
    # Prefill activations: a few hidden-size and MLP-width tensors per token, plus one row of logits per sequence.
    acts = p.batch * p.prompt_len * (8 * spec.hidden_size + 3 * spec.intermediate_size) * dtype_bytes(dtype)
    if p.attention == "eager":
        acts += 2 * p.batch * spec.num_attention_heads * p.prompt_len * total_tokens * dtype_bytes(dtype)
    return int((weight_bytes(spec, dtype) + 2 * kv + acts) * MEMORY_MARGIN)


@dataclass
class Built:
    """The point's model while it lives, and what its rows need from the build."""
    base: dict                               # the row's fixed fields (what really ran, once built)
    model: object = None
    ids: object = None
    spec: object = None
    build_s: float = 0.0
    watch: object = None                     # modes.CompileWatch


@dataclass
class Timed:
    """The timed repeats and what the rows take from them."""
    m: object                                # bench.timing.repeats.Measured
    step_stats: list
    mode_fields: dict                        # compile time, graphs, recompilations (rows.mode_fields)
    intervals: list[dict]                    # per pass: the median's interval (rows.interval_fields)
    marks: list[int]                         # per repeat: disturbed or not


@dataclass
class Probed:
    """What the untimed passes after the repeats saw."""
    n_dispatch: tuple
    hidden_syncs: int | None
    gpu_state: dict
    cpu_mem: object
    weight_bytes: int


def memory_guard(job: PointJob) -> str | None:
    """Why the point would not fit in the device's free memory, or None."""
    need = predicted_need_bytes(job.point, job.dtype)
    free = job.device.free_bytes()
    return f"predicted {need / 1e9:.2f} GB exceeds {free / 1e9:.2f} GB free" if need > free else None


def build(job: PointJob, b: Built) -> None:
    p, device = job.point, job.device
    t0 = time.perf_counter()
    b.spec = p.spec()
    b.model = build_model(b.spec, device.torch_device, job.dtype, p.attention)
    ran = getattr(b.model.config, "_attn_implementation", p.attention)
    if ran != p.attention:                 # the row says what ran, and theory predicts that
        b.base = rows.base_row(p, job.point_id, device, job.dtype, ran)
    device.sync()
    b.build_s = time.perf_counter() - t0
    gen = torch.Generator(device="cpu").manual_seed(1)
    b.ids = torch.randint(0, b.spec.vocab_size, (p.batch, p.prompt_len), generator=gen).to(device.torch_device)
    modes.prepare(b.model, p.execution, device.kind)
    if job.mode.compiled:                  # one static cache, reset() per trajectory: stable graph inputs
        hold_static_caches(b.model)
    b.watch = modes.CompileWatch(p.execution)


def time_repeats(job: PointJob, b: Built) -> Timed:
    """bench.timing.repeats.measure, with the paired kernel rounds between the repeats (they learn which
    rounds the statistics use: paired.used)."""
    p, device, sweep, paired = job.point, job.device, job.sweep, job.paired
    if paired is not None:
        paired.prepare(rewarm=lambda: trajectory.run_trajectory(b.model, device, b.ids, 1, p.cache, p.max_cache_len))
    m = measure(b.model, device, b.ids, p.generated, p.cache, p.max_cache_len, sweep.repeats, sweep.warmup_s,
                sweep.stop_rule(), job.canary, job.canary_base_s, sweep.max_retries, settled=b.watch.tick,
                between=paired.round if paired is not None else None)
    if paired is not None:
        paired.used = m.used_indices
    return Timed(m, m.step_stats(), rows.mode_fields(b.watch, m),
                 rows.interval_fields(m, sweep.stop_rule(), job.canary_base_s), rows.sample_marks(m))


def probe(job: PointJob, b: Built) -> tuple:
    """After the timed repeats: dispatched ops, hidden synchronisations, the device's state during them."""
    p, device = job.point, job.device
    n_dispatch = count_ops(b.model, b.ids, p.cache, p.max_cache_len, p.execution)
    hidden_syncs = count_hidden_syncs(b.model, device, b.ids, p.generated, p.cache, p.max_cache_len)
    return n_dispatch, hidden_syncs, device.state()          # UUID; clocks, power during repeats


def profile(job: PointJob, b: Built, t: Timed):
    """The profiled trajectories (profile.csv) as the mode allows; CPU memory from the profiler's events."""
    p, device = job.point, job.device
    medians = [s.median_s for s in t.step_stats]
    if job.profile and job.run_dir is not None and job.mode.profiler == "hooks":   # hooks see no compiled graph
        save_profile(job.run_dir, job.point_id, b.model, device, b.ids, p, medians)
    elif job.profile and job.run_dir is not None:        # compiled: Inductor's kernels named by theory's ops
        save_compiled_profile(job.run_dir, job.point_id, b.model, device, b.ids, p, b.spec, medians)
    if job.profile and job.mode.cpu_memory_events:      # the allocation trace; CPU: the profiler's memory fields
        return traced_memory(job.run_dir, job.point_id, b.model, device.kind, b.ids, p)
    return None


def measure_point(job: PointJob) -> tuple[list[dict], list[dict]]:
    """(rows, samples) of one point; its repeat record written to job.run_dir when there is one."""
    b = Built(base=rows.base_row(job.point, job.point_id, job.device, job.dtype))
    skip = memory_guard(job)
    if skip is not None:
        return [rows.failure_row(b.base, "skipped_memory", skip)], []
    try:
        build(job, b)
        t = time_repeats(job, b)
        t_prof = time.perf_counter()
        n_dispatch, hidden_syncs, gpu_state = probe(job, b)
        cpu_mem = profile(job, b, t)
        probed = Probed(n_dispatch, hidden_syncs, gpu_state, cpu_mem, model_weight_bytes(b.model))
        walls = {"build_s": b.build_s, "warmup_s": t.m.warmup_s, "repeats_s": t.m.log.repeats_s,
                 "canary_s": t.m.log.canary_s, "profile_s": time.perf_counter() - t_prof}
        if job.run_dir is not None:
            write_point_meta(job.run_dir, job.point_id, t.m, walls, job.canary)
    except torch.OutOfMemoryError as e:   # keep only the message; the traceback pins tensors
        return [rows.failure_row(b.base, "oom", str(e).splitlines()[0][:300])], []
    except Exception as e:                # any other failure costs this point only
        return [rows.failure_row(b.base, "error", rows.error_message(e))], []
    finally:
        b.model = b.ids = None
        gc.collect()
        job.device.empty_cache()
    return rows.point_rows(job, b.base, b.build_s, t, probed)
