"""Run a sweep into results/<run_id>/, one point at a time, resumable after SIGINT or SIGKILL."""
import gc
import json
import sys
import time
from pathlib import Path

import torch

from bench.build import build_model, weight_bytes as model_weight_bytes
from bench.ceilings import measure_ceilings
from bench import modes
from bench.profile import PROFILE_COLUMNS, count_flops, profile_point
from bench.env import run_metadata
from bench.records import assemble, atomic_write, csv_text, point_done, point_files, save_point, write_json
from bench.sweep import Point, Sweep, parse_sweep
from bench.timing import measure
from theory.dtypes import dtype_bytes
from theory.errors import TheoryError
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


def base_row(p: Point, point_id: str, device, dtype: str) -> dict:
    spec = p.spec()
    eager = p.attention == "eager"
    return {
        "point_id": point_id, "batch": p.batch, "prompt_len": p.prompt_len, "generated": p.generated,
        "hidden_size": spec.hidden_size, "num_hidden_layers": spec.num_hidden_layers,
        "num_attention_heads": spec.num_attention_heads, "num_key_value_heads": spec.num_key_value_heads,
        "head_dim": spec.head_dim, "intermediate_size": spec.intermediate_size, "vocab_size": spec.vocab_size,
        "model": p.model or "", "dtype": dtype, "device": device.kind, "threads": device.threads,
        "attention": p.attention, "cache": p.cache, "execution": p.execution,
        # How theory should predict this run "as run": sdpa is a fused kernel, eager materializes scores;
        # HF's dynamic cache concatenates (copies) every step; eager GQA repeats K/V for every head.
        "theory_attention": "materialized" if eager else "fused",
        "kv_update": "static" if p.cache == "static" else "copy",
        "max_cache_len": p.max_cache_len, "logits": "last",
        "repeat_kv": int(eager and spec.num_key_value_heads < spec.num_attention_heads),
    }


def measure_point(p: Point, point_id: str, device, sweep: Sweep, run_dir: Path | None = None,
                  profile: bool = False) -> tuple[list[dict], list[dict]]:
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
        device.sync()
        build_s = time.perf_counter() - t0
        gen = torch.Generator(device="cpu").manual_seed(1)
        ids = torch.randint(0, spec.vocab_size, (p.batch, p.prompt_len), generator=gen).to(device.torch_device)
        modes.prepare(model, p.execution, device.kind)
        watch = modes.CompileWatch(p.execution)
        m = measure(model, device, ids, p.generated, p.cache, p.max_cache_len, sweep.repeats, sweep.warmup_s,
                    settled=watch.tick)
        mode = mode_fields(watch, m)
        step_stats = m.step_stats()
        n_dispatch = modes.count_ops(model, ids, p.cache, p.max_cache_len, p.execution)   # after the timed repeats
        hidden_syncs = count_hidden_syncs(model, device, ids, p)
        gpu_state = device.state() if hasattr(device, "state") else {}      # clocks, power, throttling now
        if profile and run_dir is not None and p.execution == "eager":   # module hooks see no compiled graph
            save_profile(run_dir, point_id, model, device, ids, p, [s.median_s for s in step_stats])
        wbytes = model_weight_bytes(model)
    except torch.OutOfMemoryError as e:
        msg = str(e).splitlines()[0][:300]          # keep only the message; the traceback pins tensors
    else:
        msg = None
    finally:
        del model
        gc.collect()
        if device.kind == "cuda":
            torch.cuda.empty_cache()
    if msg is not None:
        return [{**base, "phase": "prefill", "step": 0, "context_len": 0, "status": "oom", "message": msg}], []
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
                     "build_s": build_s, "n_dispatch": n_dispatch[0 if i == 0 else 1], "hidden_syncs": hidden_syncs, **gpu_state,
                     "status": mode["status"], "message": mode["message"]})
        samples.append({"point_id": point_id, "phase": phase, "step": step, "repeat": -1, "time_s": m.cold.times_s[i]})
        samples += [{"point_id": point_id, "phase": phase, "step": step, "repeat": r, "time_s": t.times_s[i]}
                    for r, t in enumerate(m.repeats)]
    return rows, samples


def mode_fields(watch, m) -> dict:
    """Compile time (apart from the timed steps), graphs compiled, and recompilations during the timed and
    memory trajectories: a point that recompiled there is flagged `recompiled`, never averaged in as ok."""
    steady_s = sum(st.median_s for st in m.step_stats())
    recompiles = watch.recompiles_since_settled()
    return {"compile_s": watch.compile_s(steady_s), "graphs_compiled": watch.graphs() + recompiles,
            "recompiles_timed": recompiles, "status": "recompiled" if recompiles else "ok",
            "message": f"{recompiles} graph(s) compiled during the timed trajectories" if recompiles else ""}


def count_hidden_syncs(model, device, ids, p: Point) -> int | None:
    """CUDA only: synchronisations the model hides in a trajectory (torch.cuda.set_sync_debug_mode("warn"))."""
    if device.kind != "cuda":
        return None
    import warnings
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            from bench.timing import run_trajectory
            run_trajectory(model, device, ids, min(p.generated, 3), p.cache, p.max_cache_len)
        finally:
            torch.cuda.set_sync_debug_mode(0)
    return sum("synchroniz" in str(w.message) for w in caught)


def save_profile(run_dir: Path, point_id: str, model, device, ids, p: Point, medians: list[float]) -> None:
    """Profiled trajectories of their own, after the timed ones; FLOPs counted on prefill and decode step 0."""
    rows = profile_point(model, device, point_id, ids, p.generated, p.cache, p.max_cache_len, medians,
                         run_dir / "traces")
    flops = count_flops(model, ids, p.cache, p.max_cache_len)
    for r in rows:
        counted = flops.get((r["phase"], r["step"]), {})
        key = "attention_core" if r["op"] in ("attn_core", "attn_scores", "attn_values") else r["op"]
        r["flops_counted"] = counted.get(key)
    (run_dir / "points").mkdir(exist_ok=True)
    atomic_write(point_files(run_dir, point_id)[0].with_suffix(".profile.csv"), csv_text(rows, PROFILE_COLUMNS))


def new_run_dir(out_root: Path, device_kind: str, sweep_name: str) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    run_dir = out_root / f"{stamp}-{device_kind}-{sweep_name}"
    n = 1
    while run_dir.exists():
        n += 1
        run_dir = out_root / f"{stamp}-{device_kind}-{sweep_name}-{n}"
    run_dir.mkdir(parents=True)
    return run_dir


def start_run(sweep: Sweep, sweep_path: Path, device, out_root: Path, log=sys.stderr, profile: bool = True,
              isolate: bool | None = None) -> Path:
    """isolate: one child process per point (default on CUDA, where errors poison a process; off on CPU)."""
    run_dir = new_run_dir(out_root, device.kind, sweep.name)
    (run_dir / "sweep.json").write_text(sweep.source_text)
    meta = run_metadata(device)
    dtypes = sorted({p.resolved_dtype(device.kind) for p in sweep.points})
    print(f"measuring ceilings ({', '.join(dtypes)}) ...", file=log, flush=True)
    ceilings, detail = {}, {}
    for dt in dtypes:
        spec, det = measure_ceilings(device, dt, meta["host"])
        ceilings[dt], detail[dt] = spec.to_json(), det
        write_json(run_dir / f"ceilings-{dt}.json", spec.to_json())     # usable as `--hardware` for theory
    write_json(run_dir / "run.json", {
        "run_id": run_dir.name, **meta, "sweep_name": sweep.name, "sweep_path": str(sweep_path),
        "sweep_sha1": sweep.sha1, "repeats": sweep.repeats, "warmup_s": sweep.warmup_s,
        "points": len(sweep.points), "profile": profile,
        "isolate": device.kind == "cuda" if isolate is None else isolate, "ceilings": ceilings, "ceilings_detail": detail,
    })
    return run_dir


def run_point_isolated(run_dir: Path, index: int, p: Point, pid: str, device) -> list[dict]:
    """Measure one point in a child process: a CUDA error other than OOM poisons the process that met it, so
    it costs that point only. A child that dies leaves an `error` row with its last line of stderr."""
    import subprocess
    r = subprocess.run([sys.executable, "-m", "bench", "_point", str(run_dir), str(index)],
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if point_done(run_dir, pid):
        from bench.records import read_csv
        return read_csv(point_files(run_dir, pid)[0])
    last = (r.stderr.strip().splitlines() or [f"exit status {r.returncode}"])[-1][:300]
    row = {**base_row(p, pid, device, p.resolved_dtype(device.kind)), "phase": "prefill", "step": 0,
           "context_len": 0, "status": "error", "message": f"child process failed: {last}"}
    save_point(run_dir, pid, [row], [])
    return [row]


def execute(run_dir: Path, sweep: Sweep, device, log=sys.stderr) -> Path:
    meta = json.loads((run_dir / "run.json").read_text())
    profile, isolate = meta.get("profile", False), meta.get("isolate", False)
    ids = [p.point_id(device.kind) for p in sweep.points]
    todo = [(i, p, pid) for i, (p, pid) in enumerate(zip(sweep.points, ids)) if not point_done(run_dir, pid)]
    done_before = len(ids) - len(todo)
    if done_before:
        print(f"resuming: {done_before} of {len(ids)} points already done", file=log, flush=True)
    t_start = time.perf_counter()
    for k, (i, p, pid) in enumerate(todo):
        t0 = time.perf_counter()
        if isolate:
            rows = run_point_isolated(run_dir, i, p, pid, device)
        else:
            rows, samples = measure_point(p, pid, device, sweep, run_dir, profile)
            save_point(run_dir, pid, rows, samples)
        assemble(run_dir, ids)
        elapsed = time.perf_counter() - t_start
        eta = elapsed / (k + 1) * (len(todo) - k - 1)
        print(f"[{done_before + k + 1}/{len(ids)}] {p.label()}  {rows[0]['status']}  "
              f"{time.perf_counter() - t0:.1f} s  (ETA {eta:.0f} s)", file=log, flush=True)
    assemble(run_dir, ids)
    record_profile_overhead(run_dir)
    return run_dir


def record_profile_overhead(run_dir: Path) -> None:
    """The profiler's inflation (profiled wall time / unprofiled median), summarised into run.json."""
    path = run_dir / "profile.csv"
    if not path.exists():
        return
    from bench.records import read_csv
    import statistics
    steps = {(r["point_id"], r["phase"], r["step"]): float(r["inflation"]) for r in read_csv(path)}
    meta = json.loads((run_dir / "run.json").read_text())
    values = sorted(steps.values())
    meta["profile_inflation"] = {"median": statistics.median(values), "min": values[0], "max": values[-1],
                                 "profiled_steps": len(values),
                                 "definition": "profiled step wall time / unprofiled median of the same step"}
    write_json(run_dir / "run.json", meta)


def child_point(run_dir: Path, index: int) -> int:
    """Entry point of an isolated point: `python -m bench _point <run dir> <index>`."""
    from bench.device import get_device
    sweep, meta = load_run_sweep(run_dir)
    device = get_device(meta["device"], meta.get("threads", 1))
    p = sweep.points[index]
    pid = p.point_id(device.kind)
    rows, samples = measure_point(p, pid, device, sweep, run_dir, meta.get("profile", False))
    save_point(run_dir, pid, rows, samples)
    return 0


def load_run_sweep(run_dir: Path) -> tuple[Sweep, dict]:
    meta_path = run_dir / "run.json"
    if not meta_path.exists():
        raise TheoryError(f"{run_dir} is not a run directory (no run.json)")
    meta = json.loads(meta_path.read_text())
    text = (run_dir / "sweep.json").read_text()
    original = Path(meta["sweep_path"])
    if original.exists() and original.read_text() != text:
        raise TheoryError(f"sweep file {original} changed since this run started; refusing to resume "
                          f"(start a new run, or restore the file)")
    return parse_sweep(json.loads(text), text, str(run_dir / "sweep.json")), meta
