"""Predict from a kernel calibration (`python -m bench kernels` writes it): data, not torch.

The calibration holds, for one model and batch on one box, every op's kernel time at the prefill and at the
first and last decode step, and the framework's own cost per pass. A pass is predicted as
Σ over ops of instances × kernel time + framework cost, the same composition the report scores against the
measured model. Decode steps at other contexts interpolate each op linearly in context between the measured
steps (the cache update and attention are linear in keys) and say when they extrapolate; a different model
shape, batch, dtype, or prefill length is refused (measure that workload instead).
"""
from dataclasses import dataclass

from theory.errors import TheoryError
from theory.jsonio import read_json
from theory.model import ModelSpec

FORMAT = "inference-gaps-kernel-calibration/1"
SHAPE_FIELDS = ("hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim",
                "intermediate_size", "vocab_size")


@dataclass(frozen=True)
class PassPrediction:
    phase: str
    context_len: int
    time_s: float
    framework_s: float
    ops: dict                # op -> {"count", "time_s" (all instances), "kernel_s" (one instance), "shape"}
    extrapolated: bool


def is_calibration(path: str) -> bool:
    if not path or not path.endswith(".json"):
        return False
    try:
        obj = read_json(path)
    except TheoryError:
        return False
    return isinstance(obj, dict) and obj.get("format") == FORMAT


def load_calibration(path: str) -> dict:
    obj = read_json(path)
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise TheoryError(f"{path}: not a kernel calibration (format {FORMAT!r})")
    for key in ("model", "workload", "passes", "dtype"):
        if key not in obj:
            raise TheoryError(f"{path}: calibration lacks {key!r}")
    return obj


def check_matches(cal: dict, model: ModelSpec, batch: int, dtype: str | None) -> None:
    m, w = cal["model"], cal["workload"]
    diff = [k for k in SHAPE_FIELDS if m.get(k) != getattr(model, k)]
    if diff:
        raise TheoryError(f"the calibration was measured for {m.get('name')} ({', '.join(f'{k}={m.get(k)}' for k in diff)}),"
                          f" not {model.name}; run `python -m bench kernels --model {model.name} ...` for it")
    if batch != w["batch"]:
        raise TheoryError(f"the calibration was measured at batch {w['batch']}, not {batch}; "
                          f"run `python -m bench kernels --batch {batch} ...`")
    if dtype is not None and dtype != cal["dtype"]:
        raise TheoryError(f"the calibration was measured in {cal['dtype']}, not {dtype}")


def _pass(p: dict, ctx: int, extrapolated: bool) -> PassPrediction:
    ops = {op: {"count": o["count"], "kernel_s": o["kernel_s"], "time_s": o["count"] * o["kernel_s"],
                "shape": o.get("shape", "")} for op, o in p["ops"].items()}
    return PassPrediction(p["phase"], ctx, sum(o["time_s"] for o in ops.values()) + p["framework_s"],
                          p["framework_s"], ops, extrapolated)


def predict_pass(cal: dict, phase: str, tokens: int) -> PassPrediction:
    """tokens: the prompt length (prefill) or the context before the step (decode)."""
    passes = [p for p in cal["passes"] if p["phase"] == phase]
    if phase == "prefill":
        if not passes or passes[0]["context_len"] != 0 or cal["workload"]["prompt_len"] != tokens:
            raise TheoryError(f"the calibration's prefill is {cal['workload']['prompt_len']} tokens, not {tokens}; "
                              f"run `python -m bench kernels --prompt-len {tokens} ...`")
        return _pass(passes[0], 0, False)
    if not passes:
        raise TheoryError("the calibration has no decode step (it was measured with --generated 1)")
    a, b = passes[0], passes[-1]
    c0, c1 = a["context_len"], b["context_len"]
    x = 0.0 if c1 == c0 else (tokens - c0) / (c1 - c0)
    lerp = lambda u, v: u + (v - u) * x
    mixed = {"phase": "decode", "framework_s": lerp(a["framework_s"], b["framework_s"]),
             "ops": {op: {**o, "kernel_s": lerp(o["kernel_s"], b["ops"][op]["kernel_s"])} for op, o in a["ops"].items()}}
    return _pass(mixed, tokens, tokens < c0 or tokens > c1)


def request(cal: dict, prompt_len: int, generated: int) -> dict:
    """TTFT = the prefill; TPOT = the mean decode step (contexts prompt_len … prompt_len+generated−2)."""
    ttft = predict_pass(cal, "prefill", prompt_len)
    steps = [predict_pass(cal, "decode", prompt_len + s) for s in range(generated - 1)]
    tpot = sum(s.time_s for s in steps) / len(steps) if steps else None
    return {"time_to_first_token_s": ttft.time_s, "time_per_output_token_s": tpot, "decode_steps": len(steps),
            "request_time_s": ttft.time_s + sum(s.time_s for s in steps),
            "extrapolated": any(s.extrapolated for s in steps)}
