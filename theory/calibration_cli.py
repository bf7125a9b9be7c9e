"""`python -m theory --hardware <calibration.json>`: TTFT, TPOT and the per-op table from measured kernels."""
import json

from theory.calibration import check_matches, load_calibration, predict_pass, request
from theory.model import load_model


def calibrated_main(a) -> int:
    cal = load_calibration(a.hardware)
    model = load_model(a.model)
    check_matches(cal, model, a.batch, a.dtype)
    tokens = a.context_len if a.phase == "decode" and a.context_len is not None else a.prompt_len
    p = predict_pass(cal, a.phase, tokens)
    out = {"model": model.name, "hardware": cal.get("device_name"), "source": "kernel calibration",
           "calibration": a.hardware, "phase": a.phase, "batch": a.batch,
           "prompt_len" if a.phase == "prefill" else "context_len": tokens, "dtype": cal["dtype"],
           "cache_state": cal.get("cache_state"), "time_s": p.time_s, "framework_s": p.framework_s,
           "extrapolated": p.extrapolated,
           "ops": [{"name": op, **o} for op, o in p.ops.items()]}
    if a.generated is not None:
        out["request"] = request(cal, tokens, a.generated)
    if a.format == "json":
        print(json.dumps(out, indent=2))
        return 0
    where = f"prompt {tokens} tokens" if a.phase == "prefill" else f"context {tokens} tokens"
    lines = [f"{model.name} on {out['hardware']} (kernels measured by bench, {cal.get('threads')} thread(s), "
             f"{cal.get('cache_state')}): {a.phase}, batch {a.batch}, {where}, {cal['dtype']}"
             + ("  [extrapolated beyond the measured contexts]" if p.extrapolated else ""), "",
             f"{'op':<20}{'count':>6}{'kernel µs':>12}{'time ms':>10}{'share':>8}  shape"]
    for op, o in p.ops.items():
        lines.append(f"{op:<20}{o['count']:>6}{o['kernel_s'] * 1e6:>12.1f}{o['time_s'] * 1e3:>10.4f}"
                     f"{o['time_s'] / p.time_s:>8.1%}  {o['shape']}")
    lines += [f"{'framework':<20}{'':>6}{'':>12}{p.framework_s * 1e3:>10.4f}{p.framework_s / p.time_s:>8.1%}  "
              "modules, cache object, masks, Python (tiny-shape model path)", "",
              f"total      {p.time_s * 1e3:10.4f} ms"]
    if a.generated is not None:
        r = out["request"]
        tpot = r["time_per_output_token_s"]
        tpot_text = "n/a" if tpot is None else f"{tpot * 1e3:.3f} ms"
        lines.append(f"request    time to first token (prefill) {r['time_to_first_token_s'] * 1e3:.3f} ms, "
                     f"time per output token (mean decode step) {tpot_text}"
                     f"{' (extrapolated)' if r['extrapolated'] else ''}")
    print("\n".join(lines))
    return 0
