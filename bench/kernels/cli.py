"""`python -m bench kernels`: time only the kernels one workload needs (no full model is built) and write a
calibration JSON that `python -m theory --hardware <calibration.json>` predicts TTFT, TPOT and per-op times from.

Measured, for every --batch × --prompt-len workload: every op's kernel at the prefill and at the first and last
decode step (the cache update and attention move with context), with the model's cache state, each op instance's
work (FLOPs or bytes, theory's op table), plus the framework's own cost per pass on the same structure at tiny
shapes (a model of head_dim 8 is built for that; it costs milliseconds). Several workloads give theory more sizes
to interpolate between."""
import json
import sys
import time
from pathlib import Path

from bench.ceilings import llc_sweep
from bench.devices.select import get_device
from bench.env import run_metadata
from bench.kernels.cache import KernelCache
from bench.kernels.framework import framework_rows
from bench.kernels.plan import compose_rows, needed, passes
from bench.kernels.point import cache_state, llc_of, plans_family
from bench.store.files import write_json
from bench.sweep import ATTENTIONS, CACHES, DTYPES, Point
from theory.calibration import FORMAT, SHAPE_FIELDS
from theory.calibration.family import unplanned_reason
from theory.calibration.interp import op_work
from theory.calibration.merge import merge
from theory.calibration.regime import op_size
from theory.ops import count_ops
from bench.kernels import DEFAULT_KERNEL_CACHE, KERNELS_EXAMPLE
from theory.cliutil import HelpFormatter, OneLineParser, run_main


def build_parser() -> OneLineParser:
    p = OneLineParser(prog="python -m bench kernels", description=__doc__.strip().splitlines()[0],
                      formatter_class=HelpFormatter, epilog=KERNELS_EXAMPLE)
    p.add_argument("--model", required=True, nargs="+",
                   help="preset name or path to a Hugging Face config.json (several: one calibration of all of them, "
                        "so theory can predict a model none of them is)")
    p.add_argument("--batch", type=int, nargs="+", default=[1],
                   help="sequences per pass (several: each is calibrated, so theory interpolates between them)")
    p.add_argument("--prompt-len", type=int, nargs="+", required=True,
                   help="prompt tokens (the prefill; several: every batch × prompt pair is calibrated)")
    p.add_argument("--generated", type=int, default=8, help="tokens generated (prefill + generated−1 decode steps)")
    p.add_argument("--dtype", default="auto", choices=DTYPES, help="auto: fp32 on CPU, bf16 on CUDA")
    p.add_argument("--attention", default="sdpa", choices=ATTENTIONS, help="the attention implementation to time")
    p.add_argument("--cache", default="dynamic", choices=CACHES, help="the KV cache whose update is timed")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="where to time (auto: CUDA if present)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 is stable on shared cores)")
    p.add_argument("--out", type=Path, help="calibration JSON (default results/calibration-<model>-b<B>-t<T>.json)")
    p.add_argument("--kernel-cache", type=Path, default=DEFAULT_KERNEL_CACHE,
                   help="per-box kernel cache directory, the one `bench run` uses by default (shapes already "
                        "measured on this box are reused once its sentinels agree)")
    return p


def calibration_passes(p: Point, device, dtype: str, kcache: KernelCache) -> tuple[str, list[dict]]:
    """One workload's prefill and first and last decode step: per op, instances, kernel time and interval, the
    kernel's shape, and one instance's work (FLOPs or bytes, theory's op table: what theory interpolates by)."""
    spec = p.spec()
    state = cache_state(spec, p.batch, p.prompt_len + p.generated, dtype, kcache.fits_bytes)
    shapes = passes(spec, p.batch, p.prompt_len, p.generated, dtype, p.attention, p.cache, p.max_cache_len)
    compose = compose_rows("calibration", shapes, kcache, state)
    framework = {(r["phase"], r["step"]): r["framework_s"] for r in framework_rows(
        "calibration", spec, device, kcache, p.batch, p.prompt_len, p.generated, dtype, p.attention, p.cache,
        p.max_cache_len)}
    shape_text = {kid: r["shape"] for kid, r in kcache.rows.items()}
    last = p.generated - 2
    out = []
    for phase, step in [("prefill", 0)] + ([("decode", 0), ("decode", last)] if last > 0 else
                                           [("decode", 0)] if last == 0 else []):
        rows = [r for r in compose if r["phase"] == phase and r["step"] == step]
        rows_t = count_ops(spec, shapes[0 if phase == "prefill" else 1 + step].workload())
        work = {o.name: op_work(o) for o in rows_t}
        size = {o.name: list(op_size(o, spec.head_dim, dtype)) for o in rows_t}
        ops = {r["op"]: {"count": r["count"], "kernel_s": r["kernel_s"], "ci_low_s": r["kernel_ci_low_s"],
                         "ci_high_s": r["kernel_ci_high_s"], "shape": shape_text.get(r["kernel_id"], ""),
                         "work": work[r["op"]][0], "work_unit": work[r["op"]][1], "size": size[r["op"]]} for r in rows}
        out.append({"phase": phase, "batch": p.batch, "prompt_len": p.prompt_len, "max_cache_len": p.max_cache_len,
                    "model": {"name": spec.name, **{k: getattr(spec, k) for k in SHAPE_FIELDS}},
                    "context_len": rows[0]["context_len"], "framework_s": framework[(phase, step)],
                    "op_instances": sum(o["count"] for o in ops.values()), "ops": ops})
    return state, out


def calibration(points: list[Point], device, dtype: str, kcache: KernelCache) -> dict:
    spec = points[0].spec()
    for p in points:                     # every workload's kernels first: the cache's sentinels span them all
        shapes = passes(spec, p.batch, p.prompt_len, p.generated, dtype, p.attention, p.cache, p.max_cache_len)
        kcache.need(needed(shapes, cache_state(spec, p.batch, p.prompt_len + p.generated, dtype, kcache.llc_bytes)),
                    check=False)
    workloads, all_passes = [], []
    for p in points:
        state, ps = calibration_passes(p, device, dtype, kcache)
        workloads.append({"model": spec.name, "batch": p.batch, "prompt_len": p.prompt_len, "generated": p.generated,
                          "max_cache_len": p.max_cache_len, "cache_state": state})
        all_passes += ps
    states = sorted({w["cache_state"] for w in workloads})
    return {"format": FORMAT, "cache_state": states[0] if len(states) == 1 else "mixed", "dtype": dtype,
            "model": {"name": spec.name, **{k: getattr(spec, k) for k in SHAPE_FIELDS}},
            "attention": points[0].attention, "cache": points[0].cache, "workloads": workloads,
            "passes": all_passes}


def main(argv=None) -> int:
    a = build_parser().parse_args(argv)
    for name in ("batch", "prompt_len", "generated", "threads"):
        value = getattr(a, name)
        if min(value if isinstance(value, list) else [value]) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1")
    device = get_device(a.device, a.threads)
    per_model = [[Point(model=m, batch=b, prompt_len=t, generated=a.generated, dtype=a.dtype, attention=a.attention,
                        cache=a.cache) for b in sorted(set(a.batch)) for t in sorted(set(a.prompt_len))]
                 for m in dict.fromkeys(a.model)]
    for points in per_model:
        spec = points[0].spec()
        if not plans_family(spec):
            raise ValueError(f"bench kernels plans Llama-structured layers only (rotary, gated SiLU MLP, RMSNorm, no "
                             f"experts or biases); {spec.name} has {unplanned_reason(spec)}")
    spec = per_model[0][0].spec()
    dtype = per_model[0][0].resolved_dtype(device.kind)
    t0 = time.perf_counter()
    kcache = KernelCache(a.kernel_cache, device, llc_of(device))
    sweep = llc_sweep(device, dtype, kcache.llc_bytes)          # CPU: the effective LLC (~2 s); CUDA: None
    kcache.fits_bytes = (sweep or {}).get("effective_bytes") or kcache.llc_bytes
    cals = [calibration(points, device, dtype, kcache) for points in per_model]
    cal = merge(cals) if len(cals) > 1 else cals[0]
    meta = run_metadata(device)
    cal = {**cal, "device": device.kind, "device_name": device.name(), "torch": meta.get("torch"),
           "threads": device.threads, "memory_capacity_bytes": int(device.total_bytes()), "llc_bytes": kcache.llc_bytes, "llc_effective_bytes": kcache.fits_bytes, "utc_time": meta.get("utc_time"),
           "wall_s": time.perf_counter() - t0,
           "kernels": {"distinct": len(kcache.rows), "measured_s": kcache.measured_s,
                       "reused": sum(r["source"] == "cache" for r in kcache.rows.values()),
                       "cache_check": kcache.report()}}
    tag = lambda xs: "_".join(str(x) for x in sorted(set(xs)))
    names = "+".join(Path(c["model"]["name"]).stem for c in cals)
    out = a.out or Path("results") / f"calibration-{names}-b{tag(a.batch)}-t{tag(a.prompt_len)}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, cal)
    print(f"{len(cal['passes'])} passes, {cal['kernels']['distinct']} kernels in {cal['wall_s']:.1f} s", file=sys.stderr)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main, errors=(ValueError,)))
