"""`python -m theory --hardware <calibration.json>`: TTFT, TPOT and the per-op table from measured kernels.

Every option is honoured or refused in one line: a calibration is one box's kernels for one dtype, attention and
cache, timed as they run, so `--tp`, another `--kv-dtype`, `--mode additive` (a roofline choice), `--repeat-kv` on an
sdpa calibration and models whose kernels bench does not plan (theory/calibration/family.py) are refused."""
import json
import sys

from theory.asrun import recorded_terms
from theory.calibration import check_matches, load_calibration, predict_pass, request, status_line, upgrade
from theory.calibration.family import refusal
from theory.calibration.output import calibrated_json, calibrated_table
from theory.errors import TheoryError
from theory.hfconfig import load_model


def check_honoured(a, cal: dict, model) -> None:
    """Refuse what a calibration cannot honour, naming the option."""
    why = refusal(model)
    if why is not None:
        raise TheoryError(why)
    check_matches(cal, a.dtype)
    if a.tp != 1:
        raise TheoryError("a kernel calibration is one device's kernels; --tp is not modelled from it")
    if getattr(a, "max_cache_len", None) is not None and cal["cache"] != "static":
        raise TheoryError(f"--max-cache-len sizes a static cache, and the calibration timed a {cal['cache']} one: "
                          "drop it, or calibrate with `python -m bench kernels --cache static ...`")
    if a.kv_dtype is not None and a.kv_dtype != cal["dtype"]:
        raise TheoryError(f"the calibration's KV cache is {cal['dtype']}, not {a.kv_dtype}")
    if a.mode != "max":
        raise TheoryError(f"--mode {a.mode} chooses how the roofline adds compute and memory; a calibration times "
                          "kernels as they run, so it has no such choice (drop --mode)")
    eager = cal["attention"] == "eager"
    ran = recorded_terms(cal["attention"], cal["cache"], None, model.num_key_value_heads < model.num_attention_heads)
    as_run = {"attention": ran["theory_attention"], "kv_update": ran["kv_update"], "logits": ran["logits"],
              "repeat_kv": bool(ran["repeat_kv"])}
    for name, ran in as_run.items():          # the calibration timed one implementation; another is not in it
        given = getattr(a, name, None)
        flag = f"--{name.replace('_', '-')}"
        if given is not None and given != ran:
            what = flag if name == "repeat_kv" else f"{flag} {given}"
            timed = (f"{name.replace('_', '-')} {ran}" if name != "repeat_kv"
                     else "no K/V repeat: " + ("sdpa reads grouped K/V heads" if not eager else "the model has no GQA"))
            raise TheoryError(f"the calibration timed {cal['attention']} attention with a {cal['cache']} cache "
                              f"({timed}), not {what}; run `python -m bench kernels --attention/--cache ...` for that")


def calibrated_main(a) -> int:
    cal = load_calibration(a.hardware)
    model = load_model(a.model)
    check_honoured(a, cal, model)
    cal = upgrade(cal, model, a.model)
    decode = a.phase == "decode"
    tokens = a.context_len if decode and a.context_len is not None else a.prompt_len
    prompt = a.prompt_len if a.prompt_len is not None else tokens
    mcl = a.max_cache_len or (prompt + a.generated if a.generated is not None else None)
    # a decode step named by its context alone (no --prompt-len) is a later step, not the first after a prefill
    kind = "decode-later" if decode and a.prompt_len is None else None
    p = predict_pass(cal, model, a.phase, a.batch, prompt, tokens if decode else 0, mcl, model_ref=a.model, kind=kind)
    out = calibrated_json(cal, model, a, p, tokens, prompt, mcl)
    if a.generated is not None:
        out["request"] = request(cal, model, a.batch, prompt, a.generated, a.max_cache_len, a.model)
    note = status_line(p)
    if note is not None:                   # one line on stderr, so the JSON on stdout stays parseable
        print(f"note: {note}", file=sys.stderr)
    if a.format == "json":
        print(json.dumps(out, indent=2))
        return 0
    lines = calibrated_table(out, p, cal)
    if a.generated is not None:
        r = out["request"]
        tpot = r["time_per_output_token_s"]
        tpot_text = "n/a" if tpot is None else f"{tpot * 1e3:.3f} ms"
        how = "extrapolated" if r["extrapolated"] else "interpolated" if r["interpolated"] else "calibrated"
        lo, hi = r["time_to_first_token_interval_s"]
        tiv = r["time_per_output_token_interval_s"]
        tiv_text = "" if tiv is None else f" [{tiv[0] * 1e3:.3f}, {tiv[1] * 1e3:.3f}]"
        lines.append(f"request    time to first token (prefill) {r['time_to_first_token_s'] * 1e3:.3f} ms "
                     f"[{lo * 1e3:.3f}, {hi * 1e3:.3f}], time per output token (mean decode step) {tpot_text}{tiv_text} "
                     f"({how}, up to x{r['extrapolation_ratio']:.2f} beyond the calibrated sizes)")
        lines.append(f"interval   the kernels' 95% intervals" + (" widened by each kernel class's leave-one-out p90 "
                     "error in the calibration" if r["interval_includes_loo"] else " only (the calibration holds one "
                     "workload per class: no leave-one-out error to add)"))
        lines.append(f"shapes     calibrated on {', '.join(r['calibration_models'])}; {model.name}'s own shapes in it for "
                     f"{sum(r['own_shapes'].values())} of {len(r['own_shapes'])} ops"
                     + (f" (not: {', '.join(op for op, v in r['own_shapes'].items() if not v)})"
                        if not all(r['own_shapes'].values()) else ""))
    print("\n".join(lines))
    return 0
