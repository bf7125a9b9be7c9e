"""Predict from a kernel calibration (`python -m bench kernels` writes it): data, not torch.

A calibration holds, for one box, dtype, attention implementation and cache, every op's kernel time at the
prefill and at the first and last decode step of one or more workloads (model, batch, prompt length), with each
op instance's work (FLOPs or bytes, from theory's op table), and the framework's own cost per pass. A pass is
predicted as Σ over ops of instances × kernel time + framework cost, the same composition the report scores
against the measured model. Any model, batch, prompt or context is predicted: each op's kernel time comes from
the calibrated instances of the same op, interpolated by its work (interp.py), and the framework
cost per op instance is the calibrated one. Each op and pass says whether it was calibrated, interpolated or
extrapolated. Refused in one line: a dtype the calibration lacks, or an op it holds no instance of.

Format 1 (one workload, no op work) is still read: it predicts only the model it was measured for, its work
recomputed from that model.
"""
from dataclasses import dataclass

from theory.calibration.family import refusal
from theory.calibration.interp import CALIBRATED, EXTRAPOLATED, INTERPOLATED, as_run_workload, interpolate, op_work
from theory.capacity import check_positions
from theory.errors import TheoryError
from theory.jsonio import read_json
from theory.model import ModelSpec
from theory.ops import count_ops

FORMAT_V1 = "inference-gaps-kernel-calibration/1"
FORMAT = "inference-gaps-kernel-calibration/2"
FORMATS = (FORMAT_V1, FORMAT)
SHAPE_FIELDS = ("hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim",
                "intermediate_size", "vocab_size")


@dataclass(frozen=True)
class PassPrediction:
    phase: str
    context_len: int
    time_s: float
    framework_s: float
    ops: dict                # op -> {"count", "time_s" (all instances), "kernel_s" (one instance), "work", "status"}
    status: str              # calibrated | interpolated | extrapolated (the worst of its ops and framework)

    @property
    def extrapolated(self) -> bool:
        return self.status == EXTRAPOLATED

    @property
    def interpolated(self) -> bool:
        return self.status == INTERPOLATED


def is_calibration(path: str) -> bool:
    if not path or not path.endswith(".json"):
        return False
    try:
        obj = read_json(path)
    except TheoryError:
        return False
    return isinstance(obj, dict) and obj.get("format") in FORMATS


def load_calibration(path: str) -> dict:
    obj = read_json(path)
    if not isinstance(obj, dict) or obj.get("format") not in FORMATS:
        raise TheoryError(f"{path}: not a kernel calibration (format {FORMAT!r})")
    need = ("model", "workload", "passes", "dtype") if obj["format"] == FORMAT_V1 else \
        ("model", "workloads", "passes", "dtype", "attention", "cache")
    for key in need:
        if key not in obj:
            raise TheoryError(f"{path}: calibration lacks {key!r}")
    return obj


def upgrade(cal: dict, model: ModelSpec, model_ref: str | None = None) -> dict:
    """A format-1 calibration as format 2: its passes' op work recomputed from the model it was measured for."""
    if cal["format"] == FORMAT:
        return cal
    m, w = cal["model"], cal["workload"]
    diff = [k for k in SHAPE_FIELDS if m.get(k) != getattr(model, k)]
    if diff:
        raise TheoryError(f"the calibration (format 1) was measured for {m.get('name')} "
                          f"({', '.join(f'{k}={m.get(k)}' for k in diff)}), not {model.name}, and holds no op work to "
                          f"interpolate by; run `python -m bench kernels --model {model_ref or model.name} ...` for a format-2 one")
    passes = []
    for p in cal["passes"]:
        pb = {"phase": p["phase"], "batch": w["batch"], "prompt_len": w["prompt_len"], "context_len": p["context_len"],
              "framework_s": p["framework_s"], "ops": dict(p["ops"])}
        mcl = w["prompt_len"] + w["generated"] if w.get("cache") == "static" else None
        rows = {r.name: r for r in count_ops(model, pass_workload(cal, model, pb["phase"], pb["batch"],
                                                               pb["prompt_len"], p["context_len"], mcl))}
        pb["ops"] = {op: {**o, "work": op_work(rows[op])[0], "work_unit": op_work(rows[op])[1]}
                     for op, o in p["ops"].items() if op in rows}
        pb["op_instances"] = sum(o["count"] for o in pb["ops"].values())
        passes.append(pb)
    return {**cal, "format": FORMAT, "attention": w.get("attention", "sdpa"), "cache": w.get("cache", "dynamic"),
            "workloads": [w], "passes": passes}


def check_matches(cal: dict, dtype: str | None) -> None:
    if dtype is not None and dtype != cal["dtype"]:
        raise TheoryError(f"the calibration was measured in {cal['dtype']}, not {dtype}; "
                          f"run `python -m bench kernels --dtype {dtype} ...`")


def pass_workload(cal: dict, model: ModelSpec, phase: str, batch: int, prompt_len: int, context_len: int,
              max_cache_len: int | None):
    query = prompt_len if phase == "prefill" else 1
    past = 0 if phase == "prefill" else context_len
    if cal.get("cache", cal.get("workload", {}).get("cache")) == "static" and max_cache_len is None:
        max_cache_len = past + query
    return as_run_workload(phase, batch, query, past, cal["dtype"],
                           cal.get("attention", cal.get("workload", {}).get("attention", "sdpa")),
                           cal.get("cache", cal.get("workload", {}).get("cache", "dynamic")), max_cache_len,
                           model.num_key_value_heads < model.num_attention_heads)


def _nearest(values, x):
    return min(values, key=lambda v: (abs(v - x), v))


def framework_per_op_s(cal: dict, phase: str, batch: int, prompt_len: int, context_len: int) -> tuple[float, bool]:
    """The framework's cost per op instance for this pass: the calibrated passes of the same phase, at the nearest
    calibrated batch (and prompt, for decode), piecewise linear in tokens (prompt or context) between them and held
    at the ends. True when the pass lies outside what was calibrated (another batch or prompt, or beyond the ends)."""
    same = [p for p in cal["passes"] if p["phase"] == phase]
    b = _nearest({p["batch"] for p in same}, batch)
    same = [p for p in same if p["batch"] == b]
    if phase == "decode":
        t = _nearest({p["prompt_len"] for p in same}, prompt_len)
        same = [p for p in same if p["prompt_len"] == t]
    x = prompt_len if phase == "prefill" else context_len
    key = (lambda p: p["prompt_len"]) if phase == "prefill" else (lambda p: p["context_len"])
    pts = sorted({key(p): p["framework_s"] / p["op_instances"] for p in same}.items())
    outside = b != batch or (phase == "decode" and t != prompt_len) or not pts[0][0] <= x <= pts[-1][0]
    if x <= pts[0][0]:
        return pts[0][1], outside
    if x >= pts[-1][0]:
        return pts[-1][1], outside
    for (x0, f0), (x1, f1) in zip(pts, pts[1:]):
        if x0 <= x <= x1:
            return f0 + (f1 - f0) * (x - x0) / (x1 - x0), outside
    raise AssertionError("unreachable")


def predict_pass(cal: dict, model: ModelSpec, phase: str, batch: int, prompt_len: int, context_len: int = 0,
                 max_cache_len: int | None = None, model_ref: str | None = None) -> PassPrediction:
    """prompt_len: the prefill's tokens (and, for decode, the prompt the cache started from); context_len: decode's
    tokens in the cache before the step. model_ref: how the user named the model (for the advice in a refusal)."""
    why = refusal(model)
    if why is not None:
        raise TheoryError(why)
    check_positions(model, (prompt_len if phase == "prefill" else context_len + 1))
    cal = upgrade(cal, model, model_ref)
    if not any(p["phase"] == phase for p in cal["passes"]):
        raise TheoryError(f"the calibration has no {phase} pass (a decode step needs --generated 2 or more)")
    rows = count_ops(model, pass_workload(cal, model, phase, batch, prompt_len, context_len, max_cache_len))
    ops, statuses = {}, set()
    for r in rows:
        work, unit = op_work(r)
        inst = [(o["work"], o) for p in cal["passes"] for name, o in p["ops"].items() if name == r.name]
        if not inst:
            raise TheoryError(f"the calibration holds no kernel for op {r.name!r} ({model.name} runs it); "
                              f"run `python -m bench kernels --model {model_ref or model.name} ...`")
        k, status = interpolate([(w, o["kernel_s"]) for w, o in inst], work)
        lo, _ = interpolate([(w, o["ci_low_s"]) for w, o in inst], work)
        hi, _ = interpolate([(w, o["ci_high_s"]) for w, o in inst], work)
        ops[r.name] = {"count": r.count, "kernel_s": k, "ci_low_s": lo, "ci_high_s": hi, "time_s": r.count * k,
                       "work": work, "work_unit": unit, "status": status, "group": r.group, "flops": r.flops,
                       "bytes": r.bytes, "weight_bytes": r.weight_bytes, "act_bytes": r.act_bytes,
                       "kv_read_bytes": r.kv_read_bytes, "kv_write_bytes": r.kv_write_bytes}
        statuses.add(status)
    per_op, outside = framework_per_op_s(cal, phase, batch, prompt_len, context_len)
    framework_s = per_op * sum(r.count for r in rows)
    statuses.add(INTERPOLATED if outside else CALIBRATED)
    status = next(s for s in (EXTRAPOLATED, INTERPOLATED, CALIBRATED) if s in statuses)
    return PassPrediction(phase, context_len if phase == "decode" else 0,
                          sum(o["time_s"] for o in ops.values()) + framework_s, framework_s, ops, status)


def request(cal: dict, model: ModelSpec, batch: int, prompt_len: int, generated: int,
            max_cache_len: int | None = None, model_ref: str | None = None) -> dict:
    """TTFT = the prefill; TPOT = the mean decode step (contexts prompt_len … prompt_len+generated−2)."""
    mcl = max_cache_len or prompt_len + generated
    ttft = predict_pass(cal, model, "prefill", batch, prompt_len, 0, mcl, model_ref)
    steps = [predict_pass(cal, model, "decode", batch, prompt_len, prompt_len + s, mcl, model_ref)
             for s in range(generated - 1)]
    tpot = sum(s.time_s for s in steps) / len(steps) if steps else None
    return {"time_to_first_token_s": ttft.time_s, "time_per_output_token_s": tpot, "decode_steps": len(steps),
            "request_time_s": ttft.time_s + sum(s.time_s for s in steps),
            "extrapolated": any(s.extrapolated for s in [ttft] + steps),
            "interpolated": any(s.interpolated for s in [ttft] + steps)}


def status_line(p: PassPrediction) -> str | None:
    """One line saying which ops were not calibrated, or None when every op and the framework were."""
    if p.status == CALIBRATED:
        return None
    by = {s: [op for op, o in p.ops.items() if o["status"] == s] for s in (INTERPOLATED, EXTRAPOLATED)}
    parts = []
    if by[INTERPOLATED]:
        parts.append(f"{len(by[INTERPOLATED])} of {len(p.ops)} ops interpolated between calibrated sizes by their work")
    if by[EXTRAPOLATED]:
        parts.append(f"{len(by[EXTRAPOLATED])} extrapolated beyond them at the nearest size's achieved rate "
                     f"({', '.join(by[EXTRAPOLATED])})")
    if not parts:
        parts.append("every op calibrated; the framework's per-op cost taken from the nearest calibrated pass")
    return f"{p.status}: this workload is not in the calibration; " + "; ".join(parts)
