"""`python -m theory --hardware <calibration.json>`: TTFT, TPOT and the per-op table from measured kernels."""
import json
import sys

from theory.asrun import recorded_terms
from theory.calibration import check_matches, load_calibration, predict_pass, request, status_line, upgrade
from theory.errors import TheoryError
from theory.hfconfig import load_model


def calibrated_main(a) -> int:
    cal = load_calibration(a.hardware)
    model = load_model(a.model)
    check_matches(cal, a.dtype)
    if a.tp != 1:
        raise TheoryError("a kernel calibration is one device's kernels; --tp is not modelled from it")
    if a.kv_dtype is not None and a.kv_dtype != cal["dtype"]:
        raise TheoryError(f"the calibration's KV cache is {cal['dtype']}, not {a.kv_dtype}")
    cal = upgrade(cal, model)
    ran = recorded_terms(cal["attention"], cal["cache"], None, False)
    as_run = {"attention": ran["theory_attention"], "kv_update": ran["kv_update"], "logits": ran["logits"]}
    for name, ran in as_run.items():          # the calibration timed one implementation; another is not in it
        given = getattr(a, name, None)
        if given is not None and given != ran:
            raise TheoryError(f"the calibration timed {cal['attention']} attention with a {cal['cache']} cache "
                              f"({name.replace('_', '-')} {ran}), not --{name.replace('_', '-')} {given}; "
                              f"run `python -m bench kernels --attention/--cache ...` for that")
    decode = a.phase == "decode"
    tokens = a.context_len if decode and a.context_len is not None else a.prompt_len
    prompt = a.prompt_len if a.prompt_len is not None else tokens
    mcl = a.max_cache_len or (prompt + a.generated if a.generated is not None else None)
    p = predict_pass(cal, model, a.phase, a.batch, prompt, tokens if decode else 0, mcl)
    out = {"model": model.name, "hardware": cal.get("device_name"), "source": "kernel calibration",
           "calibration": a.hardware, "phase": a.phase, "batch": a.batch,
           "context_len" if decode else "prompt_len": tokens, "dtype": cal["dtype"],
           "cache_state": cal.get("cache_state"), "time_s": p.time_s, "framework_s": p.framework_s,
           "status": p.status, "extrapolated": p.extrapolated, "interpolated": p.interpolated,
           "ops": [{"name": op, **o} for op, o in p.ops.items()]}
    if a.generated is not None:
        out["request"] = request(cal, model, a.batch, prompt, a.generated, a.max_cache_len)
    note = status_line(p)
    if note is not None:                   # one line on stderr, so the JSON on stdout stays parseable
        print(f"note: {note}", file=sys.stderr)
    if a.format == "json":
        print(json.dumps(out, indent=2))
        return 0
    where = f"prompt {tokens} tokens" if not decode else f"context {tokens} tokens"
    lines = [f"{model.name} on {out['hardware']} (kernels measured by bench, {cal.get('threads')} thread(s), "
             f"{cal.get('cache_state')}): {a.phase}, batch {a.batch}, {where}, {cal['dtype']}  [{p.status}]", "",
             f"{'op':<20}{'count':>6}{'kernel µs':>12}{'time ms':>10}{'share':>8}  {'how':<13}"]
    for op, o in p.ops.items():
        lines.append(f"{op:<20}{o['count']:>6}{o['kernel_s'] * 1e6:>12.1f}{o['time_s'] * 1e3:>10.4f}"
                     f"{o['time_s'] / p.time_s:>8.1%}  {o['status']:<13}")
    lines += [f"{'framework':<20}{'':>6}{'':>12}{p.framework_s * 1e3:>10.4f}{p.framework_s / p.time_s:>8.1%}  "
              "per op instance as calibrated (modules, cache object, masks, Python; tiny-shape model path)", "",
              f"total      {p.time_s * 1e3:10.4f} ms"]
    if a.generated is not None:
        r = out["request"]
        tpot = r["time_per_output_token_s"]
        tpot_text = "n/a" if tpot is None else f"{tpot * 1e3:.3f} ms"
        how = "extrapolated" if r["extrapolated"] else "interpolated" if r["interpolated"] else "calibrated"
        lines.append(f"request    time to first token (prefill) {r['time_to_first_token_s'] * 1e3:.3f} ms, "
                     f"time per output token (mean decode step) {tpot_text} ({how})")
    print("\n".join(lines))
    return 0
