"""`python -m bench kvmem`: the KV-cache memory staircase a CUDA GPU would show, predicted from one pass's
allocation trace replayed through theory's model of PyTorch's caching allocator (theory/allocator.py), and on
CUDA measured beside it.

The model is built on the device present (random weights); one trajectory (prefill + generated−1 decode steps)
records every allocation and free (CPU: the profiler's memory events; CUDA: the allocator's own history). Per
step: the cache tensors' bytes, and the replay's allocated and reserved bytes (weights included, as they share the
allocator's segments); on CUDA also the allocator's measured counters. Totals per token are slopes over the decode
steps; the reserved staircase is summarised by its jumps (size, period)."""
import json
import sys
from pathlib import Path

from theory.cliutil import HelpFormatter, OneLineParser, run_main
from theory.errors import TheoryError

EXAMPLES = """examples:
  python -m bench kvmem --model d_model=1024,layers=8,heads=8 --dtype bf16 --prompt-len 32 --generated 200
  python -m bench kvmem --model tinyllama-1.1b --batch 4 --prompt-len 128 --generated 64 --format json
  python -m bench kvmem --model hidden_size=256,num_hidden_layers=2 --generated 40 --figure kv.png --trace t.csv

--model takes a preset, a config.json path, or a sweep point's shape fields (bench/sweep.py Point) as
key=value,...; aliases: d_model=hidden_size, layers=num_hidden_layers, heads (sets head_dim = d_model/heads),
kv_heads (sets kv_group = heads/kv_heads), vocab=vocab_size."""
ALIASES = {"d_model": "hidden_size", "layers": "num_hidden_layers", "vocab": "vocab_size"}
SHAPE_KEYS = ("hidden_size", "num_hidden_layers", "head_dim", "kv_group", "mlp_ratio", "vocab_size")


def build_parser() -> OneLineParser:
    from bench.sweep import ATTENTIONS, CACHES, DTYPES
    p = OneLineParser(prog="python -m bench kvmem", description=__doc__.strip(), formatter_class=HelpFormatter,
                      epilog=EXAMPLES)
    p.add_argument("--model", required=True, help="preset, config.json path, or key=value shape (see below)")
    p.add_argument("--dtype", default="auto", choices=DTYPES, help="auto: fp32 on CPU, bf16 on CUDA")
    p.add_argument("--batch", type=int, default=1, help="sequences per pass")
    p.add_argument("--prompt-len", type=int, default=32, help="prompt tokens")
    p.add_argument("--generated", type=int, default=64, help="tokens generated (prefill + generated−1 decode steps)")
    p.add_argument("--cache", default="dynamic", choices=CACHES, help="transformers' KV cache")
    p.add_argument("--attention", default="sdpa", choices=ATTENTIONS, help="attention implementation")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="auto: CUDA if present")
    p.add_argument("--threads", type=int, default=1, help="torch threads on CPU")
    p.add_argument("--format", default="table", choices=("table", "json"), help="a table for people, JSON for programs")
    p.add_argument("--figure", type=Path, help="write the staircase figure (PNG) here")
    p.add_argument("--trace", type=Path, help="write the allocation trace (CSV) here")
    return p


def parse_model(spec: str, a) -> "Point":
    """A Point from --model and the workload options; a shape spec is checked as a sweep file's point would be."""
    from bench.sweep import Point, _check_point_values, _validate_point
    work = {"batch": a.batch, "prompt_len": a.prompt_len, "generated": a.generated, "dtype": a.dtype,
            "attention": a.attention, "cache": a.cache}
    if "=" not in spec:
        values = {"model": spec}
    else:
        values, heads, kv_heads = {}, None, None
        for item in filter(None, spec.split(",")):
            k, sep, v = item.partition("=")
            k = ALIASES.get(k.strip(), k.strip())
            if not sep or k not in (*SHAPE_KEYS, "heads", "kv_heads"):
                raise TheoryError(f"--model: {item!r} is not key=value with a key of {', '.join(SHAPE_KEYS)}, "
                                  f"d_model, layers, heads, kv_heads, vocab")
            try:
                num = float(v) if k == "mlp_ratio" else int(v)
            except ValueError:
                raise TheoryError(f"--model: {k} must be a number, got {v!r}") from None
            if k == "heads":
                heads = num
            elif k == "kv_heads":
                kv_heads = num
            else:
                values[k] = num
        d = values.get("hidden_size", Point.hidden_size)
        if heads is not None:
            if heads <= 0 or d % heads:
                raise TheoryError(f"--model: heads {heads} must divide d_model {d}")
            values["head_dim"] = d // heads
        if kv_heads is not None:
            h = d // values.get("head_dim", Point.head_dim)
            if kv_heads <= 0 or h % kv_heads:
                raise TheoryError(f"--model: kv_heads {kv_heads} must divide the {h} heads")
            values["kv_group"] = h // kv_heads
    values = _check_point_values({**values, **work}, "--model")
    p = Point(**values)
    _validate_point(p, "--model")
    return p


def pick_device(choice: str) -> str:
    import torch
    if choice == "cuda" and not torch.cuda.is_available():
        raise TheoryError("--device cuda: torch sees no CUDA device here")
    return "cuda" if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()) else "cpu"


def record(p, device: str, threads: int = 1) -> dict:
    """Build, run one traced trajectory, replay the trace: the per-step table and its summary."""
    import torch
    from bench.model import build_model, weight_bytes
    torch.manual_seed(0)
    if device == "cpu":
        torch.set_num_threads(threads)
    dtype = p.resolved_dtype(device)
    model = build_model(p.spec(), device, dtype, p.attention)
    gen = torch.Generator(device="cpu").manual_seed(0)
    ids = torch.randint(0, p.spec().vocab_size, (p.batch, p.prompt_len), generator=gen).to(device)
    pid = p.point_id(device)
    if device == "cuda":
        from bench.profiling.cudatrace import cuda_memory_and_trace
        measured, trace, kv = cuda_memory_and_trace(model, ids, p.generated, p.cache, p.max_cache_len, pid)
    else:
        from bench.profiling.cpumem import cpu_memory_and_trace
        _, trace, kv = cpu_memory_and_trace(model, ids, p.generated, p.cache, p.max_cache_len, pid, p.generated)
        measured = None
    from bench.kvreport import summarize
    return summarize(p, pid, device, dtype, weight_bytes(model), trace, kv, measured)


def main(argv=None) -> int:
    a = build_parser().parse_args(argv)
    for name in ("batch", "prompt_len", "generated", "threads"):
        if getattr(a, name) < 1:
            raise TheoryError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(a, name)}")
    p = parse_model(a.model, a)
    device = pick_device(a.device)
    out = record(p, device, a.threads)
    from bench.kvreport import render_table, staircase_figure, TRACE_KEY
    trace = out.pop(TRACE_KEY)
    if a.trace:
        from bench.store.traces import trace_text
        a.trace.write_text(trace_text(trace))
    if a.figure:
        staircase_figure(out, a.figure)
        out["figure"] = str(a.figure)
    print(json.dumps(out, indent=2) if a.format == "json" else render_table(out))
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main, errors=(ValueError,)))
