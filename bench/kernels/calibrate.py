"""The work of `python -m bench kernels` once its options are checked (bench/kernels/cli.py stays torch-free, so
its --help is quick): every workload's kernels timed with the model's cache state, the framework's own cost, and
the calibration JSON written."""
import sys
import time
from pathlib import Path

from bench.ceilings import llc_sweep
from bench.devices.select import get_device
from bench.env import run_metadata
from bench.kernels.cache import KernelCache
from bench.kernels.framework import framework_rows
from bench.kernels.plan import compose_rows, needed, passes
from bench.kernels.point import BOUNDARY_BAND, cache_margin, cache_state, llc_of
from bench.store.files import write_json
from bench.sweep import Point
from theory.calibration import FORMAT, SHAPE_FIELDS
from theory.calibration.interp import op_work
from theory.calibration.merge import merge
from theory.calibration.regime import SIZE_BASIS, op_size, row_length
from theory.ops import count_ops

MIB = 2**20


def state_of(p: Point, dtype: str, kcache: KernelCache, forced: str) -> str:
    """The cache state a workload's kernels are timed in: --cache-state when given, else the rule."""
    if forced != "auto":
        return forced
    return cache_state(p.spec(), p.batch, p.prompt_len + p.generated, dtype, kcache.fits_bytes)


def framework_of(p: Point, device, dtype: str, kcache: KernelCache) -> dict:
    """(phase, step) -> the framework's own cost of one workload's passes (bench/kernels/framework.py)."""
    return {(r["phase"], r["step"]): r["framework_s"] for r in framework_rows(
        "calibration", p.spec(), device, kcache, p.batch, p.prompt_len, p.generated, dtype, p.attention, p.cache,
        p.max_cache_len)}


def calibration_passes(p: Point, device, dtype: str, kcache: KernelCache, state: str,
                       framework: dict | None = None) -> list[dict]:
    """One workload's prefill and first and last decode step: per op, instances, kernel time and interval, the
    kernel's shape, and one instance's work (FLOPs or bytes, theory's op table: what theory interpolates by).
    framework: the workload's framework_of, when already measured."""
    spec = p.spec()
    shapes = passes(spec, p.batch, p.prompt_len, p.generated, dtype, p.attention, p.cache, p.max_cache_len)
    compose = compose_rows("calibration", shapes, kcache, state)
    framework = framework or framework_of(p, device, dtype, kcache)
    shape_text = {kid: r["shape"] for kid, r in kcache.rows.items()}
    last = p.generated - 2
    out = []
    for phase, step in [("prefill", 0)] + ([("decode", 0), ("decode", last)] if last > 0 else
                                           [("decode", 0)] if last == 0 else []):
        rows = [r for r in compose if r["phase"] == phase and r["step"] == step]
        rows_t = count_ops(spec, shapes[0 if phase == "prefill" else 1 + step].workload())
        work = {o.name: op_work(o) for o in rows_t}
        size = {o.name: list(op_size(o, spec.head_dim, dtype, p.batch * spec.num_attention_heads)) for o in rows_t}
        row_len = {o.name: row_length(o) for o in rows_t}
        ops = {r["op"]: {"count": r["count"], "kernel_s": r["kernel_s"], "ci_low_s": r["kernel_ci_low_s"],
                         "ci_high_s": r["kernel_ci_high_s"], "shape": shape_text.get(r["kernel_id"], ""),
                         "work": work[r["op"]][0], "work_unit": work[r["op"]][1], "size": size[r["op"]],
                         "row_len": row_len[r["op"]]} for r in rows}
        out.append({"phase": phase, "batch": p.batch, "prompt_len": p.prompt_len, "max_cache_len": p.max_cache_len,
                    "model": {"name": spec.name, **{k: getattr(spec, k) for k in SHAPE_FIELDS}},
                    "context_len": rows[0]["context_len"], "framework_s": framework[(phase, step)],
                    "op_instances": sum(o["count"] for o in ops.values()), "ops": ops})
    return out


def calibration(points: list[Point], device, dtype: str, kcache: KernelCache, forced: str = "auto",
                frameworks: list[dict] | None = None) -> dict:
    """One model's calibration over its workloads; frameworks: each workload's framework_of, when measured."""
    spec = points[0].spec()
    for p in points:                     # every workload's kernels first: the cache's sentinels span them all
        shapes = passes(spec, p.batch, p.prompt_len, p.generated, dtype, p.attention, p.cache, p.max_cache_len)
        kcache.need(needed(shapes, state_of(p, dtype, kcache, forced)), check=False)
    workloads, all_passes = [], []
    for i, p in enumerate(points):
        state = state_of(p, dtype, kcache, forced)
        all_passes += calibration_passes(p, device, dtype, kcache, state, frameworks[i] if frameworks else None)
        workloads.append({"model": spec.name, "batch": p.batch, "prompt_len": p.prompt_len, "generated": p.generated,
                          "max_cache_len": p.max_cache_len, "cache_state": state,
                          "cache_state_from": "rule" if forced == "auto" else "--cache-state",
                          "cache_margin": cache_margin(spec, p.batch, p.prompt_len + p.generated, dtype,
                                                       kcache.fits_bytes)})
    states = sorted({w["cache_state"] for w in workloads})
    return {"format": FORMAT, "size_basis": SIZE_BASIS, "cache_state": states[0] if len(states) == 1 else "mixed",
            "dtype": dtype,
            "model": {"name": spec.name, **{k: getattr(spec, k) for k in SHAPE_FIELDS}},
            "attention": points[0].attention, "cache": points[0].cache, "workloads": workloads,
            "passes": all_passes}


def boundary_warning(per_model: list[list[Point]], dtype: str, llc_bytes: int | None, argv_hint: str) -> str | None:
    """One line for the workloads near the cache-state threshold (point.BOUNDARY_BAND), or None."""
    near = []
    for points in per_model:
        for p in points:
            m = cache_margin(p.spec(), p.batch, p.prompt_len + p.generated, dtype, llc_bytes)
            if m and m["near_boundary"]:
                near.append((p, m))
    if not near:
        return None
    p, m = near[0]
    other = "llc" if m["rule_state"] == "dram" else "dram"
    more = f" (and {len(near) - 1} more workload(s))" if len(near) > 1 else ""
    return (f"WARNING: cache state near its threshold: {p.spec().name} at batch {p.batch}, {p.prompt_len}+"
            f"{p.generated} tokens streams {m['streamed_bytes'] / MIB:.1f} MiB per pass, x{m['streamed_over_threshold']:.2f} "
            f"of the threshold (half the effective LLC: {m['threshold_bytes'] / MIB:.1f} of {llc_bytes / MIB:.1f} MiB "
            f"measured now){more}, inside the x{BOUNDARY_BAND:g} band either way: timed as {m['rule_state']}, but "
            f"an LLC measured ~30% apart flips it to {other} and can move TPOT ~3x. Calibrate that state too: "
            f"{argv_hint} --cache-state {other} --out <another.json>, and compare with `bench.kernels.versus`")


def measure(device, per_model: list[list[Point]], dtype: str, forced: str, kernel_cache, argv_hint: str | None) -> dict:
    """One calibration of every model's workloads, timed now (kernel_cache None: every kernel timed afresh, none
    read from or written to the per-box cache). With argv_hint, a workload near the cache-state threshold is said
    first, on stderr, with the command that calibrates the other state."""
    t0 = time.perf_counter()
    kcache = KernelCache(kernel_cache, device, llc_of(device))
    sweep = llc_sweep(device, dtype, kcache.llc_bytes)          # CPU: the effective LLC (~2 s); CUDA: None
    kcache.fits_bytes = (sweep or {}).get("effective_bytes") or kcache.llc_bytes
    if argv_hint is not None:                                    # the first line: before any verdict or timing
        warning = boundary_warning(per_model, dtype, kcache.fits_bytes, argv_hint)
        if warning:
            print(warning, file=sys.stderr, flush=True)
    cals = [calibration(points, device, dtype, kcache, forced) for points in per_model]
    return stamped(merge(cals) if len(cals) > 1 else cals[0], device, kcache, t0)


def stamped(cal: dict, device, kcache, t0: float) -> dict:
    """The calibration with the box it was timed on, when, how long it took and what its kernel cache did."""
    meta = run_metadata(device)
    return {**cal, "device": device.kind, "device_name": device.name(), "torch": meta.get("torch"),
            "threads": device.threads, "memory_capacity_bytes": int(device.total_bytes()),
            "llc_bytes": kcache.llc_bytes, "llc_effective_bytes": kcache.fits_bytes, "utc_time": meta.get("utc_time"),
            "wall_s": time.perf_counter() - t0,
            "kernels": {"distinct": len(kcache.rows), "measured_s": kcache.measured_s,
                        "reused": sum(r["source"] == "cache" for r in kcache.rows.values()),
                        "cache_check": kcache.report()}}


def calibrate(a, per_model: list[list[Point]]) -> int:
    device = get_device(a.device, a.threads)
    dtype = per_model[0][0].resolved_dtype(device.kind)
    hint = (f"python -m bench kernels --model {' '.join(a.model)} --batch {' '.join(map(str, a.batch))} "
            f"--prompt-len {' '.join(map(str, a.prompt_len))} --generated {a.generated}")
    cal = measure(device, per_model, dtype, a.cache_state, a.kernel_cache, hint if a.cache_state == "auto" else None)
    tag = lambda xs: "_".join(str(x) for x in sorted(set(xs)))
    names = "+".join(Path(points[0].spec().name).stem for points in per_model)
    state = "" if a.cache_state == "auto" else f"-{a.cache_state}"
    out = a.out or Path("results") / f"calibration-{names}-b{tag(a.batch)}-t{tag(a.prompt_len)}{state}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, cal)
    print(f"{len(cal['passes'])} passes, {cal['kernels']['distinct']} kernels in {cal['wall_s']:.1f} s", file=sys.stderr)
    print(out)
    return 0
