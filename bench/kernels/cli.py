"""`python -m bench kernels`: time only the kernels one workload needs (no full model is built) and write a
calibration JSON that `python -m theory --hardware <calibration.json>` predicts TTFT, TPOT and per-op times from.

Measured: every op's kernel at the prefill and at the first and last decode step (the cache update and
attention move with context), with the model's cache state, plus the framework's own cost per pass on the same
structure at tiny shapes (a model of head_dim 8 is built for that; it costs milliseconds)."""
import json
import sys
import time
from pathlib import Path

from bench.device import get_device
from bench.env import run_metadata
from bench.kernels.cache import KernelCache
from bench.kernels.framework import framework_rows
from bench.kernels.plan import compose_rows, passes
from bench.kernels.point import cache_state, llc_of, plans_family
from bench.records import write_json
from bench.sweep import ATTENTIONS, CACHES, DTYPES, Point
from theory.calibration import FORMAT, SHAPE_FIELDS
from theory.cliutil import HelpFormatter, OneLineParser, run_main


def build_parser() -> OneLineParser:
    from bench.cli import KERNELS_EXAMPLE
    p = OneLineParser(prog="python -m bench kernels", description=__doc__.strip().splitlines()[0],
                      formatter_class=HelpFormatter, epilog=KERNELS_EXAMPLE)
    p.add_argument("--model", required=True, help="preset name or path to a Hugging Face config.json")
    p.add_argument("--batch", type=int, default=1, help="sequences per pass")
    p.add_argument("--prompt-len", type=int, required=True, help="prompt tokens (the prefill)")
    p.add_argument("--generated", type=int, default=8, help="tokens generated (prefill + generated−1 decode steps)")
    p.add_argument("--dtype", default="auto", choices=DTYPES, help="auto: fp32 on CPU, bf16 on CUDA")
    p.add_argument("--attention", default="sdpa", choices=ATTENTIONS, help="the attention implementation to time")
    p.add_argument("--cache", default="dynamic", choices=CACHES, help="the KV cache whose update is timed")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="where to time (auto: CUDA if present)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 is stable on shared cores)")
    p.add_argument("--out", type=Path, help="calibration JSON (default results/calibration-<model>-b<B>-t<T>.json)")
    p.add_argument("--kernel-cache", type=Path, default=Path("results/kernel-cache"),
                   help="per-box kernel cache directory (shapes already measured on this box are reused)")
    return p


def calibration(p: Point, device, dtype: str, kcache: KernelCache) -> dict:
    spec = p.spec()
    state = cache_state(spec, p.batch, p.prompt_len + p.generated, dtype, kcache.llc_bytes)
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
        out.append({"phase": phase, "context_len": rows[0]["context_len"], "framework_s": framework[(phase, step)],
                    "ops": {r["op"]: {"count": r["count"], "kernel_s": r["kernel_s"], "ci_low_s": r["kernel_ci_low_s"],
                                      "ci_high_s": r["kernel_ci_high_s"], "shape": shape_text.get(r["kernel_id"], "")}
                            for r in rows}})
    return {"format": FORMAT, "cache_state": state, "dtype": dtype,
            "model": {"name": spec.name, **{k: getattr(spec, k) for k in SHAPE_FIELDS}},
            "workload": {"batch": p.batch, "prompt_len": p.prompt_len, "generated": p.generated,
                         "attention": p.attention, "cache": p.cache}, "passes": out}


def main(argv=None) -> int:
    a = build_parser().parse_args(argv)
    for name in ("batch", "prompt_len", "generated", "threads"):
        if getattr(a, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1")
    device = get_device(a.device, a.threads)
    p = Point(model=a.model, batch=a.batch, prompt_len=a.prompt_len, generated=a.generated, dtype=a.dtype,
              attention=a.attention, cache=a.cache)
    spec = p.spec()
    if not plans_family(spec):
        raise ValueError(f"bench kernels plans Llama-structured layers only (rotary, gated MLP, no experts or "
                         f"biases); {spec.name} is a {spec.model_type} model")
    dtype = p.resolved_dtype(device.kind)
    t0 = time.perf_counter()
    kcache = KernelCache(a.kernel_cache, device, llc_of(device))
    cal = calibration(p, device, dtype, kcache)
    meta = run_metadata(device)
    cal = {**cal, "device": device.kind, "device_name": device.name(), "torch": meta.get("torch"),
           "threads": device.threads, "llc_bytes": kcache.llc_bytes, "utc_time": meta.get("utc_time"),
           "wall_s": time.perf_counter() - t0,
           "kernels": {"distinct": len(kcache.rows), "measured_s": kcache.measured_s,
                       "reused": sum(r["source"] == "cache" for r in kcache.rows.values()),
                       "cache_check": kcache.report()}}
    out = a.out or Path("results") / f"calibration-{Path(spec.name).stem}-b{a.batch}-t{a.prompt_len}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, cal)
    print(f"{len(cal['passes'])} passes, {cal['kernels']['distinct']} kernels in {cal['wall_s']:.1f} s", file=sys.stderr)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main, errors=(ValueError,)))
