"""`python -m theory`: predicted FLOPs, bytes, time and memory for one prefill or decode step."""
import json
import sys

from theory.calibration import is_calibration
from theory.cliutil import HelpFormatter, OneLineParser, run_main
from theory.hardware import hardware_presets, load_hardware
from theory.hfconfig import load_model, model_presets
from theory.ops import ATTENTION, KV_UPDATE, LOGITS, PHASES, Workload
from theory.dtypes import DTYPE_BYTES
from theory.errors import TheoryError
from theory.roofline import MODES, predict, request_times
from theory.report_notes import model_notes


def build_parser() -> OneLineParser:
    p = OneLineParser(prog="python -m theory", formatter_class=HelpFormatter, epilog=EXAMPLES,
                      description=__doc__.strip() + (
        " --phase decode predicts one decode step with --context-len tokens already in the cache (or, given only"
        " --prompt-len, the first step after that prompt); --phase prefill predicts the prompt itself. Unset options"
        " take the ideal defaults."))
    need = p.add_argument_group("required (except with --list)")
    need.add_argument("--model", help="preset name or path to a Hugging Face config.json")
    need.add_argument("--hardware", help="preset id or path to a hardware JSON (bench's ceilings-<dtype>.json works "
                      "too, and a kernel calibration from `python -m bench kernels`)")
    need.add_argument("--prompt-len", type=int, help="prompt tokens (prefill, and the request of --generated); "
                      "for decode without --context-len, the first decode step after this prompt")
    p.add_argument("--context-len", type=int, help="decode: tokens in the cache before the step (the step reads one more)")
    p.add_argument("--batch", type=int, default=1, help="sequences per pass")
    p.add_argument("--phase", choices=PHASES, default="decode", help="which pass to predict")
    p.add_argument("--dtype", choices=list(DTYPE_BYTES),
                   help="weights and matmuls (default: bf16, or the one dtype a ceilings file lists)")
    p.add_argument("--kv-dtype", choices=list(DTYPE_BYTES), help="KV cache (default: --dtype)")
    p.add_argument("--tp", type=int, default=1, help="tensor-parallel devices")
    p.add_argument("--attention", choices=ATTENTION, help="fused (default) or materialized")
    p.add_argument("--kv-update", choices=KV_UPDATE, help="append (default), copy or static")
    p.add_argument("--max-cache-len", type=int, help="static cache slots")
    p.add_argument("--logits", choices=LOGITS, help="lm_head on the last token (default) or all tokens")
    p.add_argument("--repeat-kv", action="store_true", default=None, help="eager GQA copies K/V to every head")
    p.add_argument("--mode", choices=MODES, default="max", help="max(compute, memory) or compute + memory")
    p.add_argument("--reserve-fraction", type=float, default=0.0, help="capacity held back from the KV budget")
    p.add_argument("--generated", type=int, help="also predict a whole request generating this many tokens")
    p.add_argument("--format", choices=("table", "json"), default="table", help="a table for people, JSON for programs")
    p.add_argument("--list", action="store_true", help="list model and hardware presets and exit")
    kdb = p.add_argument_group("measured kernels from a published database (docs/gpu-prediction.md)")
    kdb.add_argument("--kernel-db", help="aiconfigurator[:vllm|trtllm|sglang[@version]]: compose every op from "
                     "aiconfigurator-core's measured kernels for --hardware's system, beside the datasheet")
    kdb.add_argument("--runtime", choices=("graphs", "eager"), default="graphs",
                     help="with --kernel-db: kernels summed (CUDA graphs), or max(host dispatch, kernel) per op")
    kdb.add_argument("--host-ceilings", help="with --runtime eager: a bench ceilings JSON whose measured "
                     "launch_overhead_s is the host cost per op (default: a cited constant)")
    return p


EXAMPLES = """examples:
  python -m theory --model llama-2-7b --hardware a100-sxm-80gb --context-len 1024
  python -m theory --model llama-3-70b --hardware h100-sxm-80gb --tp 4 --batch 16 --prompt-len 4096 --generated 256
  python -m theory --model theory/data/models/mistral-7b.json --hardware results/<run>/ceilings-fp32.json \\
      --phase prefill --prompt-len 512 --format json
  python -m theory --list"""


def workload_kwargs(a) -> dict:
    kw = {"phase": a.phase, "batch": a.batch}
    if a.phase == "prefill":
        kw["prompt_len"] = a.prompt_len
    else:
        kw["context_len"] = a.prompt_len if a.context_len is None else a.context_len
    for name in ("dtype", "kv_dtype", "attention", "kv_update", "max_cache_len", "logits", "repeat_kv"):
        if getattr(a, name) is not None:
            kw[name] = getattr(a, name)
    return kw


def check_options(a) -> None:
    for name, low in (("prompt_len", 1), ("context_len", 0), ("batch", 1), ("max_cache_len", 1)):
        value = getattr(a, name)
        if value is not None and value < low:
            raise TheoryError(f"--{name.replace('_', '-')} must be at least {low}, got {value}")
    if not 0 <= a.reserve_fraction < 1:          # also false for NaN
        raise TheoryError(f"--reserve-fraction must be in [0, 1), got {a.reserve_fraction}")
    if a.generated is not None and a.generated < 1:
        raise TheoryError(f"--generated must be at least 1, got {a.generated}")
    if a.max_cache_len is not None and a.kv_update != "static" and not is_calibration(a.hardware):
        raise TheoryError(f"--max-cache-len sizes a static cache, and this prediction has a "
                          f"{a.kv_update or 'append'} one: add --kv-update static, or drop --max-cache-len")


def throughput(out: dict) -> float | None:
    """Tokens the batch processes per second of this pass: batch × prompt tokens / prefill time, or
    batch × 1 token / decode step time."""
    tokens = out["batch"] * (out["prompt_len"] if out["phase"] == "prefill" else 1)
    return tokens / out["time_s"] if out["time_s"] else None


def fmt_bytes(n: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3f} {unit}"
    return f"{n:.0f} B"


def render_table(out: dict, request: dict | None) -> str:
    lines = [f"STAND-IN: {a}" for a in out.get("assumptions", []) if "stands in" in a]
    lines += [] if out.get("fits", True) else [f"INFEASIBLE: {out['model']} {out['fits_reason']}"]
    lines += [f"{out['model']} on {out['hardware']}: {out['phase']}, batch {out['batch']}, "
             + (f"prompt {out['prompt_len']} tokens" if out["phase"] == "prefill"
                else f"context {out['context_len']} tokens (decode step reads {out['context_len'] + 1})")
             + f", {out['dtype']}, tp {out['tp']}, mode {out['mode']}", ""]
    total = out["time_s"] or 1.0
    lines.append(f"{'op':<20}{'count':>6}{'GFLOP':>12}{'MB moved':>12}{'FLOP/B':>9}{'compute ms':>12}"
                 f"{'memory ms':>11}{'time ms':>10}  {'bound':<8}{'share':>7}")
    for o in out["ops"]:
        ai = o["intensity_flops_per_byte"]
        lines.append(f"{o['name']:<20}{o['count']:>6}{o['flops'] / 1e9:>12.4f}{o['bytes'] / 1e6:>12.3f}"
                     f"{'-' if ai is None else f'{ai:.1f}':>9}{o['compute_s'] * 1e3:>12.4f}{o['memory_s'] * 1e3:>11.4f}"
                     f"{o['time_s'] * 1e3:>10.4f}  {o['bound']:<8}{o['time_s'] / total:>7.1%}")
    lines.append("")
    for g, v in out["groups"].items():
        lines.append(f"{g:<10} {v['time_s'] * 1e3:10.4f} ms  ({v['time_s'] / total:.1%})")
    lines += ["", f"total      {out['time_s'] * 1e3:10.4f} ms   {out['flops'] / 1e9:.3f} GFLOP   {fmt_bytes(out['bytes'])} moved",
              f"throughput {out['tokens_per_s'] or 0:,.1f} tokens/s (batch × "
              f"{'prompt tokens / prefill time' if out['phase'] == 'prefill' else '1 token / decode step time'})",
              f"weights    {fmt_bytes(out['weight_bytes'])} per device",
              f"KV cache   {fmt_bytes(out['kv_cache_bytes'])} after this pass",
              f"capacity   (reserve {out['reserve_fraction']:.0%} of device memory) max batch at this context: "
              f"{out['max_batch_at_context']}, max context at this batch: "
              f"{'unbounded (sliding window)' if out['max_context_at_batch'] is None else out['max_context_at_batch']} tokens",
              critical_line(out)]
    lines += model_notes(out)
    if request:
        lines += [f"request    time to first token (prefill) {request['time_to_first_token_s'] * 1e3:.3f} ms, "
                  f"time per output token (mean decode step) {request['time_per_output_token_s'] * 1e3:.3f} ms, "
                  f"whole request {request['request_time_s'] * 1e3:.3f} ms",
                  f"           decode {request['decode_tokens_per_s'] or 0:,.1f} tokens/s (batch / time per output token), "
                  f"whole request {request['request_tokens_per_s'] or 0:,.1f} tokens/s (batch × generated / request time)"]
    return "\n".join(lines)


def critical_line(out: dict) -> str:
    """The batch where weight matmuls turn compute-bound; for MoE per group, with each group's share of the pass."""
    text = f"critical batch (weight matmuls turn compute-bound): {out['critical_batch']:.1f}"
    by = out.get("critical_batch_by_group")
    if by:
        d, e = by["dense"], by["experts"]
        text += (f" for the dense ops ({d['share_of_time']:.0%} of this pass); {e['critical_batch']:,.1f} for the "
                 f"expert matmuls ({e['share_of_time']:.0%}; {e['what'].removeprefix('expert matmuls: ')})")
    return text


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    if a.list:
        print("models:   " + ", ".join(model_presets()))
        print("hardware: " + ", ".join(hardware_presets()))
        return 0
    if a.model is not None:
        load_model(a.model)                       # an unknown model is said before what else is missing
    missing = [f"--{n.replace('_', '-')}" for n in ("model", "hardware") if getattr(a, n) is None]
    if a.prompt_len is None and (a.phase == "prefill" or a.context_len is None or a.generated is not None):
        missing.append("--prompt-len" if a.phase == "prefill" or a.generated is not None else "--context-len")
    if missing:
        raise SystemExit(build_parser().error(f"missing {', '.join(missing)}"))
    check_options(a)
    if a.kernel_db is not None:                    # a published kernel database (lazily imported: pandas)
        from theory.kerneldb.cli import kernel_db_main
        return kernel_db_main(a)
    if is_calibration(a.hardware):                 # kernels measured by `python -m bench kernels`
        from theory.calibration.cli import calibrated_main
        return calibrated_main(a)
    model, hw = load_model(a.model), load_hardware(a.hardware)
    if a.dtype is None and len(hw.peak_flops_per_s) == 1:     # a CPU ceilings file lists its one dtype
        a.dtype = next(iter(hw.peak_flops_per_s))
    kw = workload_kwargs(a)
    pred = predict(model, hw, Workload(**kw), a.mode, a.tp)
    out = pred.to_json(a.reserve_fraction)
    out["tokens_per_s"] = throughput(out)
    from theory.kvrun import cuda_json                     # KV memory and capacity as CUDA's allocator reserves them
    out.update(cuda_json(model, hw, out, a.max_cache_len))
    request = None
    if a.generated is not None:
        rest = {k: v for k, v in kw.items() if k not in ("phase", "batch", "prompt_len", "context_len")}
        request = request_times(model, hw, a.batch, a.prompt_len, a.generated, a.mode, a.tp, **rest)
        out["request"] = request
    print(json.dumps(out, indent=2) if a.format == "json" else render_table(out, request))
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
