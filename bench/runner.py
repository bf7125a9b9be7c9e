"""Run a sweep into results/<run_id>/, one point at a time, resumable after SIGINT or SIGKILL."""
import gc
import hashlib
import json
import re
import sys
import time
from pathlib import Path

import torch

from bench.build import build_model, weight_bytes as model_weight_bytes
from bench.ceilings import measure_ceilings
from bench.profiling.cpumem import cpu_memory_fields, cpu_memory_trajectory
from bench import modes
from bench.profiling.record import save_profile
from bench.run.summary import record_profile_overhead
from bench.compiled.profile import save_compiled_profile
from bench.env import run_metadata
from bench.gpu.syncs import count_hidden_syncs
from bench.kernels.point import (assemble_kernels, drop_point_kernels, measure_point_kernels, paired_kernels,
                                 run_kernel_cache, save_paired_kernels)
from bench.repeat.canary import Canary, baseline
from bench.repeat.stats import SLOW_REL
from bench.repeat.endrun import remeasure_ceilings, remeasure_noisy
from bench.store.repeats import add_canary, add_wall, write_point_meta
from bench.run.summary import summarize
from bench.repeat.rows import interval_fields, sample_marks
from bench.store.points import assemble, point_done, save_point
from bench.store.files import atomic_write, write_json
from bench.sweep import Point, Sweep, parse_sweep
from bench.timing import measure, run_trajectory
from theory.dtypes import dtype_bytes
from theory.errors import TheoryError
from theory.jsonio import check_keys, read_json
from theory.memory import kv_cache_bytes, weight_bytes

REMEASURE_POINTS_S = 10       # end-of-run re-measure budget, in units of the sweep's max_point_s
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


def base_row(p: Point, point_id: str, device, dtype: str, attention: str | None = None) -> dict:
    """attention: what the built model really runs, when transformers chose otherwise (Gemma-2 has no sdpa path)."""
    spec = p.spec()
    attention = attention or p.attention
    eager = attention == "eager"
    return {
        "point_id": point_id, "batch": p.batch, "prompt_len": p.prompt_len, "generated": p.generated,
        "hidden_size": spec.hidden_size, "num_hidden_layers": spec.num_hidden_layers,
        "num_attention_heads": spec.num_attention_heads, "num_key_value_heads": spec.num_key_value_heads,
        "head_dim": spec.head_dim, "intermediate_size": spec.intermediate_size, "vocab_size": spec.vocab_size,
        "model": p.model or "", "dtype": dtype, "device": device.kind, "threads": device.threads,
        "attention": attention, "cache": p.cache, "execution": p.execution,
        # How theory should predict this run "as run": sdpa is a fused kernel, eager materializes scores;
        # HF's dynamic cache concatenates (copies) every step; eager GQA repeats K/V for every head.
        "theory_attention": "materialized" if eager else "fused",
        "kv_update": "static" if p.cache == "static" else "copy",
        "max_cache_len": p.max_cache_len, "logits": "last",
        "repeat_kv": int(eager and spec.num_key_value_heads < spec.num_attention_heads),
    }


def measure_point(p: Point, point_id: str, device, sweep: Sweep, run_dir: Path | None = None,
                  profile: bool = False, canary=None, canary_base_s: float | None = None,
                  paired=None) -> tuple[list[dict], list[dict]]:
    """paired: a bench.kernels.paired.PairedKernels, whose rounds run between the timed repeats; it learns which
    rounds the statistics use (paired.used)."""
    dtype = p.resolved_dtype(device.kind)
    base = base_row(p, point_id, device, dtype)
    need = predicted_need_bytes(p, dtype)
    free = device.free_bytes()
    if need > free:
        msg = f"predicted {need / 1e9:.2f} GB exceeds {free / 1e9:.2f} GB free"
        return [{**base, "phase": "prefill", "step": 0, "context_len": 0, "status": "skipped_memory", "message": msg}], []
    model = None
    try:
        t0 = time.perf_counter()
        spec = p.spec()
        model = build_model(spec, device.torch_device, dtype, p.attention)
        ran = getattr(model.config, "_attn_implementation", p.attention)
        if ran != p.attention:                 # the row says what ran, and theory predicts that
            base = base_row(p, point_id, device, dtype, ran)
        device.sync()
        build_s = time.perf_counter() - t0
        gen = torch.Generator(device="cpu").manual_seed(1)
        ids = torch.randint(0, spec.vocab_size, (p.batch, p.prompt_len), generator=gen).to(device.torch_device)
        modes.prepare(model, p.execution, device.kind)
        watch = modes.CompileWatch(p.execution)
        if paired is not None:
            paired.prepare(rewarm=lambda: run_trajectory(model, device, ids, 1, p.cache, p.max_cache_len))
        m = measure(model, device, ids, p.generated, p.cache, p.max_cache_len, sweep.repeats, sweep.warmup_s,
                    sweep.stop_rule(), canary, canary_base_s, sweep.max_retries, settled=watch.tick,
                    between=paired.round if paired is not None else None)
        if paired is not None:
            paired.used = m.used_indices
        mode = modes.mode_fields(watch, m)
        step_stats = m.step_stats()
        intervals, marks = interval_fields(m, sweep.stop_rule(), canary_base_s), sample_marks(m)
        t_prof = time.perf_counter()
        n_dispatch = modes.count_ops(model, ids, p.cache, p.max_cache_len, p.execution)   # after the timed repeats
        hidden_syncs = count_hidden_syncs(model, device, ids, p.generated, p.cache, p.max_cache_len)
        gpu_state = device.state() if hasattr(device, "state") else {}      # UUID; clocks, power during repeats
        if profile and run_dir is not None and p.execution == "eager":   # module hooks see no compiled graph
            save_profile(run_dir, point_id, model, device, ids, p, [s.median_s for s in step_stats])
        elif profile and run_dir is not None:            # compiled: Inductor's kernels named by theory's ops
            save_compiled_profile(run_dir, point_id, model, device, ids, p, spec, [s.median_s for s in step_stats])
        cpu_mem = (cpu_memory_trajectory(model, ids, p.generated, p.cache, p.max_cache_len)
                   if profile and device.kind == "cpu" and p.execution == "eager" else None)   # CPU: profiler events
        wbytes = model_weight_bytes(model)
        walls = {"build_s": build_s, "warmup_s": m.warmup_s, "repeats_s": m.log.repeats_s,
                 "canary_s": m.log.canary_s, "profile_s": time.perf_counter() - t_prof}
        if run_dir is not None:
            write_point_meta(run_dir, point_id, m, walls, canary)
    except torch.OutOfMemoryError as e:
        msg, status = str(e).splitlines()[0][:300], "oom"    # keep only the message; the traceback pins tensors
    except Exception as e:                                   # any other failure costs this point only
        msg, status = error_message(e), "error"
    else:
        msg = None
    finally:
        del model
        gc.collect()
        device.empty_cache()
    if msg is not None:
        return [{**base, "phase": "prefill", "step": 0, "context_len": 0, "status": status, "message": msg}], []
    rows, samples = [], []
    for i, st in enumerate(step_stats):
        phase, step = ("prefill", 0) if i == 0 else ("decode", i - 1)
        mem = m.memory.memory[i]
        rows.append({**base, **mode, "phase": phase, "step": step, "context_len": 0 if i == 0 else p.prompt_len + i - 1,
                     "time_s": st.median_s, "time_p10_s": st.p10_s, "time_p90_s": st.p90_s, "repeats": st.n,
                     "time_cold_s": m.cold.times_s[i], "kv_cache_bytes": m.cold.kv_bytes[i], "weight_bytes": wbytes,
                     "mem_allocated_bytes": mem.allocated_bytes, "mem_reserved_bytes": mem.reserved_bytes,
                     "mem_allocated_peak_total_bytes": mem.allocated_peak_total_bytes,
                     "mem_reserved_peak_total_bytes": mem.reserved_peak_total_bytes,
                     "device_used_bytes": mem.device_used_bytes, "rss_peak_bytes": mem.rss_peak_bytes,
                     **cpu_memory_fields(cpu_mem, i), "build_s": build_s, "n_dispatch": n_dispatch[0 if i == 0 else 1],
                     "hidden_syncs": hidden_syncs, **gpu_state,
                     "tokens_per_s": tokens_per_s(p, i, st.median_s), **intervals[i]})
        samples.append({"point_id": point_id, "phase": phase, "step": step, "repeat": -1, "time_s": m.cold.times_s[i]})
        samples += [{"point_id": point_id, "phase": phase, "step": step, "repeat": r, "time_s": t.times_s[i],
                     "disturbed": marks[r]} for r, t in enumerate(m.repeats)]
    return rows, samples


def error_message(e: BaseException) -> str:
    first = (str(e).strip().splitlines() or [""])[0]
    return f"{type(e).__name__}: {first}"[:300]


def tokens_per_s(p: Point, trajectory_index: int, time_s: float) -> float | None:
    """Throughput of one timed pass: batch × prompt tokens / prefill time, or batch × 1 token / decode step time."""
    tokens = p.batch * (p.prompt_len if trajectory_index == 0 else 1)
    return tokens / time_s if time_s > 0 else None


def new_run_dir(out_root: Path, device_kind: str, sweep_name: str) -> Path:
    """A fresh directory directly under out_root, created atomically (mkdir either makes it or fails)."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", sweep_name).strip(".-") or "sweep"    # never a path
    out_root.mkdir(parents=True, exist_ok=True)
    for n in range(1, 10_000):
        run_dir = out_root / (f"{stamp}-{device_kind}-{safe}" + (f"-{n}" if n > 1 else ""))
        try:
            run_dir.mkdir()
            return run_dir
        except FileExistsError:
            continue
    raise TheoryError(f"cannot create a new run directory under {out_root}")


def create_run(sweep: Sweep, sweep_path: Path, device, out_root: Path, log=sys.stderr, profile: bool = True,
               isolate: bool | None = None, gpus: list[int] | None = None, kernels: bool = True,
               kernel_timing: str = "paired") -> Path:
    """The run directory with sweep.json and run.json (no ceilings yet), printed before anything is measured,
    so an interruption at any moment leaves a directory `resume` can finish.
    isolate: one child process per point (default on CUDA, where errors poison a process; off on CPU).
    gpus: CUDA only, several GPUs measuring isolated points in parallel (bench.gpu.parallel).
    kernel_timing: "paired" (an eager point's kernels in rounds between its repeats, bench.kernels.paired) or
    "cached" (after the point, from the per-box kernel cache)."""
    run_dir = new_run_dir(out_root, device.kind, sweep.name)
    print(f"run directory: {run_dir}", file=log, flush=True)
    atomic_write(run_dir / "sweep.json", sweep.source_text)
    # The parent of an isolated CUDA run learns its device's facts from the ceilings child (ensure_ceilings).
    facts = {} if hasattr(device, "probe") else run_metadata(device)
    write_json(run_dir / "run.json", {
        "run_id": run_dir.name, **facts, "device": device.kind, "threads": device.threads,
        "sweep_name": sweep.name, "sweep_path": str(sweep_path),
        "sweep_sha1": sweep.sha1, "repeats": sweep.repeats, "warmup_s": sweep.warmup_s,
        "min_repeats": sweep.min_repeats, "max_repeats": sweep.max_repeats, "max_point_s": sweep.max_point_s,
        "points": len(sweep.points), "profile": profile, "kernels": kernels,
        "kernel_timing": kernel_timing if kernels else None,
        "isolate": device.kind == "cuda" if isolate is None else isolate, **({"gpus": gpus} if gpus else {}),
        "ceilings": {}, "ceilings_detail": {},
    })
    return run_dir


def ensure_ceilings(run_dir: Path, sweep: Sweep, device, log=sys.stderr) -> None:
    """Measure the ceilings of every dtype the sweep uses that run.json does not hold yet (an isolated CUDA
    run measures them in a child process, so this process never creates a CUDA context)."""
    meta = json.loads((run_dir / "run.json").read_text())
    ceilings, detail = meta.setdefault("ceilings", {}), meta.setdefault("ceilings_detail", {})
    dtypes = sorted({p.resolved_dtype(device.kind) for p in sweep.points})
    missing = [dt for dt in dtypes if dt not in ceilings]
    if not missing:
        return
    child = hasattr(device, "probe")
    print(f"measuring ceilings ({', '.join(missing)}){' in a child process' if child else ''} ...", file=log, flush=True)
    if child:
        device.probe(run_dir, missing, log)
        for k, v in run_metadata(device).items():     # the device's facts, from the child
            meta.setdefault(k, v)
    t_ceil = time.perf_counter()
    for dt in missing:
        spec, det = device.ceilings(dt) if child else measure_ceilings(device, dt, meta.get("host", ""))
        spec = as_theory_kind(spec)
        ceilings[dt], detail[dt] = spec.to_json(), det
        write_json(run_dir / f"ceilings-{dt}.json", spec.to_json())     # usable as `--hardware` for theory
        write_json(run_dir / "run.json", meta)
    meta["ceilings_wall_s"] = round(meta.get("ceilings_wall_s", 0.0) + time.perf_counter() - t_ceil, 3)
    gc.collect()
    device.empty_cache()                  # the ceilings' GiB-sized buffers: give them back before points run
    if device.kind == "cuda":
        meta.update(gpu_run_fields(device, meta.get("gpus"), dtypes, meta.get("host", ""), run_dir, log))
    write_json(run_dir / "run.json", meta)


def start_run(sweep: Sweep, sweep_path: Path, device, out_root: Path, log=sys.stderr, profile: bool = True,
              isolate: bool | None = None, gpus: list[int] | None = None, kernels: bool = True,
              kernel_timing: str = "paired") -> Path:
    run_dir = create_run(sweep, sweep_path, device, out_root, log, profile, isolate, gpus, kernels, kernel_timing)
    ensure_ceilings(run_dir, sweep, device, log)
    return run_dir


def as_theory_kind(spec):
    """theory's HardwareSpec.kind is "gpu" or "cpu"; a device's kind is "cuda" or "cpu"."""
    import dataclasses
    return dataclasses.replace(spec, kind="gpu" if spec.kind == "cuda" else spec.kind)


def gpu_run_fields(device, gpus, dtypes, host, run_dir, log) -> dict:
    from bench.gpu.parallel import run_fields
    return run_fields(device, gpus, dtypes, host, run_dir, log)


def run_point_isolated(run_dir: Path, index: int, p: Point, pid: str, device, sweep: Sweep | None = None,
                       gpu: str | None = None, timeout_s: float | None = None) -> list[dict]:
    """Measure one point in a child process (bench.gpu.isolate): a CUDA error other than OOM poisons the
    process that met it, so it costs that point only; a child that dies or overruns its time leaves a row."""
    from bench.gpu.isolate import run_child
    return run_child(run_dir, index, p, pid, device, sweep, gpu=gpu, timeout_s=timeout_s)


def execute(run_dir: Path, sweep: Sweep, device, log=sys.stderr) -> Path:
    ensure_ceilings(run_dir, sweep, device, log)
    meta = json.loads((run_dir / "run.json").read_text())
    profile, isolate = meta.get("profile", False), meta.get("isolate", False)
    if isolate and meta.get("gpus"):          # --gpus: points in parallel, one child per GPU (CUDA_VISIBLE_DEVICES)
        from bench.gpu.parallel import execute_parallel
        return execute_parallel(run_dir, sweep, device, meta, log)
    ids = [p.point_id(device.kind) for p in sweep.points]
    todo = [(i, p, pid) for i, (p, pid) in enumerate(zip(sweep.points, ids)) if not point_done(run_dir, pid)]
    done_before = len(ids) - len(todo)
    if done_before:
        print(f"resuming: {done_before} of {len(ids)} points already done", file=log, flush=True)
    t_start = time.perf_counter()
    kcache = run_kernel_cache(run_dir, device) if meta.get("kernels") and not isolate else None  # children: own
    canary = None if isolate else Canary(device)
    if canary is not None and meta.get("canary_baseline_s") is None:    # the run's reference, taken once
        base = baseline(canary)
        meta["canary_baseline_s"], meta["canary_slow_rel"] = base.time_s, base.slow_rel
        write_json(run_dir / "run.json", meta)
    if canary is not None:
        canary.slow_rel = meta.get("canary_slow_rel", SLOW_REL)        # runs from before the threshold: 5%
    for k, (i, p, pid) in enumerate(todo):
        t0 = time.perf_counter()
        if isolate:
            rows = run_point_isolated(run_dir, i, p, pid, device, sweep)
        else:
            rows = measure_with_canary(run_dir, p, pid, device, sweep, profile, canary, meta.get("canary_baseline_s"),
                                       kcache)
        assemble(run_dir, ids)
        assemble_kernels(run_dir, ids, point_done)
        elapsed = time.perf_counter() - t_start
        eta = elapsed / (k + 1) * (len(todo) - k - 1)
        print(f"[{done_before + k + 1}/{len(ids)}] {p.label()}  {rows[0]['status']}  "
              f"{time.perf_counter() - t0:.1f} s  (ETA {eta:.0f} s)", file=log, flush=True)
    if not isolate and sweep.max_retries != 0:     # isolated (CUDA) runs and fixed-count sweeps keep their first
        again: dict = {}                           # a re-measured point brings its own paired kernels

        def remeasure(q, qid):
            again[qid] = paired_kernels(q, qid, device, kcache)
            return measure_point(q, qid, device, sweep, None, False, canary, meta.get("canary_baseline_s"),
                                 again[qid])

        def kept(qid, rows, second):
            paired = again.pop(qid, None)
            if paired is None:
                return
            if second:
                save_paired_kernels(run_dir, qid, rows, paired)
            else:
                paired.close()

        remeasure_noisy(run_dir, dict(zip(ids, sweep.points)), REMEASURE_POINTS_S * sweep.max_point_s, remeasure,
                        log, kept, lambda qid: drop_point_kernels(run_dir, qid))
    assemble(run_dir, ids)
    assemble_kernels(run_dir, ids, point_done)
    print("measuring ceilings again (drift) ...", file=log, flush=True)
    end_ceilings(run_dir, device, sorted({p.resolved_dtype(device.kind) for p in sweep.points}), log)
    record_profile_overhead(run_dir)
    meta = json.loads((run_dir / "run.json").read_text())
    meta["repeat_summary"] = summarize(run_dir, ids)
    if kcache is not None:                # the per-box kernel cache's sentinel check, one entry per process
        meta.setdefault("kernel_cache", []).append(kcache.report())
    write_json(run_dir / "run.json", meta)
    return run_dir


def measure_with_canary(run_dir: Path, p: Point, pid: str, device, sweep: Sweep, profile: bool, canary,
                        base_s: float | None, kcache=None) -> list[dict]:
    """A point bracketed by canary readings (before, between repeats, after); its slice of the series is kept.
    Its kernels (kcache) are timed before its rows land, so a point is whole or absent."""
    k0 = len(canary.series)
    canary.read("point-start")
    paired = paired_kernels(p, pid, device, kcache)
    rows, samples = measure_point(p, pid, device, sweep, run_dir, profile, canary, base_s, paired)
    canary.read("point-end")
    add_canary(run_dir, pid, canary.series[k0:])
    if paired is not None:
        k0_s = time.perf_counter()
        save_paired_kernels(run_dir, pid, rows, paired)
        add_wall(run_dir, pid, "kernels_s", paired.rounds_s + time.perf_counter() - k0_s)
    elif kcache is not None:
        k0_s = time.perf_counter()
        measure_point_kernels(run_dir, p, pid, device, rows, kcache)
        add_wall(run_dir, pid, "kernels_s", time.perf_counter() - k0_s)
    save_point(run_dir, pid, rows, samples)
    return rows


def end_ceilings(run_dir: Path, device, dtypes: list[str], log=sys.stderr) -> None:
    """The ceilings again at the end of the run (drift); an isolated CUDA run measures them in a child again."""
    measure = None
    if hasattr(device, "probe"):
        device.probe(run_dir, dtypes, log)
        measure = device.ceilings
    remeasure_ceilings(run_dir, device, dtypes, measure)


def child_point(run_dir: Path, index: int) -> int:
    """Entry point of an isolated point: `python -m bench _point <run dir> <index>`."""
    from bench.device import get_device
    sweep, meta = load_run_sweep(run_dir)
    device = get_device(meta["device"], meta.get("threads", 1))
    p = sweep.points[index]
    pid = p.point_id(device.kind)
    kcache = run_kernel_cache(run_dir, device) if meta.get("kernels") else None
    measure_with_canary(run_dir, p, pid, device, sweep, meta.get("profile", False), Canary(device),
                        meta.get("canary_baseline_s"), kcache)
    return 0


def load_run_sweep(run_dir: Path) -> tuple[Sweep, dict]:
    meta_path = run_dir / "run.json"
    if not meta_path.exists():
        raise TheoryError(f"{run_dir} is not a run directory (no run.json)")
    meta = read_json(meta_path)
    check_keys(meta, set(meta) if isinstance(meta, dict) else set(), {"sweep_path", "sweep_sha1", "device"},
               str(meta_path))
    text = (run_dir / "sweep.json").read_text()
    if hashlib.sha1(text.encode()).hexdigest() != meta["sweep_sha1"]:
        raise TheoryError(f"{run_dir / 'sweep.json'} does not match the sweep_sha1 recorded in {meta_path}; "
                          f"refusing to resume (start a new run)")
    original = Path(meta["sweep_path"])
    if original.exists() and original.read_text() != text:
        raise TheoryError(f"sweep file {original} changed since this run started; refusing to resume "
                          f"(start a new run, or restore the file)")
    return parse_sweep(json.loads(text), text, str(run_dir / "sweep.json")), meta
