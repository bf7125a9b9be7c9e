"""`python -m bench kernels`: time only the kernels one workload needs (no full model is built) and write a
calibration JSON that `python -m theory --hardware <calibration.json>` predicts TTFT, TPOT and per-op times from.

Measured, for every --batch × --prompt-len workload: every op's kernel at the prefill and at the first and last
decode step (the cache update and attention move with context), with the model's cache state, each op instance's
work (FLOPs or bytes, theory's op table), plus the framework's own cost per pass on the same structure at tiny
shapes (a model of head_dim 8 is built for that; it costs milliseconds). Several workloads give theory more sizes
to interpolate between."""
import sys
from pathlib import Path

# torch-free down to the parser (its --help is instant); bench/kernels/calibrate.py holds the work
from bench.kernels import DEFAULT_KERNEL_CACHE, KERNELS_EXAMPLE, first_paragraph
from bench.sweep import ATTENTIONS, CACHES, DTYPES, Point
from theory.calibration.family import unplanned_reason
from theory.cliutil import HelpFormatter, OneLineParser, run_main


def build_parser() -> OneLineParser:
    p = OneLineParser(prog="python -m bench kernels", description=first_paragraph(__doc__),
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
    p.add_argument("--cache-state", default="auto", choices=("auto", "dram", "llc"),
                   help="the cache state kernels are timed in (auto: dram unless what the model streams per pass fits "
                        "half the effective LLC; near that threshold, calibrate both and compare)")
    p.add_argument("--out", type=Path, help="calibration JSON (default results/calibration-<model>-b<B>-t<T>.json)")
    p.add_argument("--kernel-cache", type=Path, default=DEFAULT_KERNEL_CACHE,
                   help="per-box kernel cache directory, the one `bench run` uses by default (shapes already "
                        "measured on this box are reused once its sentinels agree)")
    return p


def calibration_points(models, batches, prompt_lens, generated: int, dtype: str, attention: str,
                       cache: str) -> list[list[Point]]:
    """Per model (each once), every batch × prompt workload; a model whose layers bench cannot plan is refused."""
    per_model = [[Point(model=m, batch=b, prompt_len=t, generated=generated, dtype=dtype, attention=attention,
                        cache=cache) for b in sorted(set(batches)) for t in sorted(set(prompt_lens))]
                 for m in dict.fromkeys(models)]
    for points in per_model:
        spec = points[0].spec()
        why = unplanned_reason(spec)
        if why is not None:
            raise ValueError(f"bench kernels plans Llama-structured layers only (rotary, gated SiLU MLP, RMSNorm, no "
                             f"experts or biases); {spec.name} has {why}")
    return per_model


def main(argv=None) -> int:
    a = build_parser().parse_args(argv)
    for name in ("batch", "prompt_len", "generated", "threads"):
        value = getattr(a, name)
        if min(value if isinstance(value, list) else [value]) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1")
    per_model = calibration_points(a.model, a.batch, a.prompt_len, a.generated, a.dtype, a.attention, a.cache)
    from bench.kernels.calibrate import calibrate
    return calibrate(a, per_model)


if __name__ == "__main__":
    sys.exit(run_main(main, errors=(ValueError,)))
