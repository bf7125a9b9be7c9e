"""Predict from a kernel calibration (`python -m bench kernels` writes it): data, not torch.

A calibration holds, for one box, dtype, attention implementation and cache, every op's kernel time at the
prefill and at the first and last decode step of one or more workloads (model, batch, prompt length), with each
op instance's work (FLOPs or bytes, from theory's op table), and the framework's own cost per pass. A pass is
predicted as Σ over ops of instances × kernel time + framework cost, the same composition the report scores
against the measured model. Any model, batch, prompt or context is predicted: each op's kernel time comes from
the calibrated instances of the same op, interpolated by its work (interp.py), and the framework
cost per op instance is the calibrated one. Each op and pass says whether it was calibrated, interpolated or
extrapolated. Refused in one line: a dtype the calibration lacks, or an op it holds no instance of.

A calibration whose passes carry `residual_s` (`bench.kernels.versus --full-passes`: the calibration models' own
passes timed in the same rounds, minus their kernels and framework) adds that term too, fitted over the
calibrated depths like the framework's cost but by a signed line (framework.py): what a full-size model costs
beyond its pieces timed alone, measured on other models, never on the target. Scored on twelve tries it did not
transfer (results/README.md), so `versus` writes it only when asked.

Format 1 (one workload, no op work) is still read: it predicts only the model it was measured for, its work
recomputed from that model.
"""
import dataclasses
from dataclasses import dataclass

from theory.calibration.family import refusal
from theory.calibration.framework import framework_estimate, step_kind
from theory.calibration.interval import class_errors, pass_interval
from theory.calibration.interp import CALIBRATED, EXTRAPOLATED, INTERPOLATED, as_run_workload, op_work
from theory.calibration.regime import (SIZE_BASIS, Sized, estimate, kernel_class, op_size, pools_phases,
                                      rate_above_in_x0, row_length)
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
    status: str              # calibrated | interpolated | extrapolated (the worst of its ops, framework, residual)
    framework: dict | None = None   # framework.FrameworkEstimate's fields and its status
    residual_s: float = 0.0         # beyond kernels and framework, from the calibration models' full passes
    residual: dict | None = None    # its fit (framework.py's, key residual_s) and status; None: none calibrated

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


def pass_model(cal: dict, p: dict, model: ModelSpec) -> ModelSpec | None:
    """The model a calibrated pass was measured on (its shape fields over the target's family); a hand-made file
    that records no shape is taken as measured on the target itself."""
    fields = p.get("model") or cal.get("model") or {}
    if not all(k in fields for k in SHAPE_FIELDS):
        return model
    return dataclasses.replace(model, name=fields.get("name", model.name), **{k: fields[k] for k in SHAPE_FIELDS})


def sized(cal: dict, model: ModelSpec) -> dict:
    """The calibration with every op instance's regime size (regime.op_size) filled in, unless it already holds
    every size in this code's basis (regime.SIZE_BASIS: a file written before that basis has its sizes
    recomputed from the model and workload each pass records)."""
    if cal.get("size_basis", 1) == SIZE_BASIS and all("size" in o for p in cal["passes"] for o in p["ops"].values()):
        return cal
    passes = []
    for p in cal["passes"]:
        m = pass_model(cal, p, model)
        rows = {} if m is None else {r.name: r for r in count_ops(m, pass_workload(
            cal, m, p["phase"], p["batch"], p["prompt_len"], p["context_len"], p.get("max_cache_len")))}
        problems = p["batch"] * m.num_attention_heads if m is not None else 1
        ops = {op: {**o, "size": list(op_size(rows[op], m.head_dim, cal["dtype"], problems)) if op in rows
                    else o.get("size", [o["work"], 1.0]),
                    "row_len": row_length(rows[op]) if op in rows else o.get("row_len", 0.0)}
               for op, o in p["ops"].items()}
        passes.append({**p, "ops": ops})
    return {**cal, "passes": passes, "size_basis": SIZE_BASIS}


class Index(dict):
    """build_index's answer, a dict; `memo` keeps every estimate made from it, since a request's decode steps and
    a leave-one-out's points ask for the same linears' sizes again and again."""

    def __init__(self):
        super().__init__()
        self.memo: dict = {}

    def estimates(self, name: str, phase: str, x0: float, x1: float, pool: bool, above: bool, k: float) -> dict:
        key = (name, phase, x0, x1, pool, above, k)
        if key not in self.memo:
            self.memo[key] = {b: estimate(v, phase, x0, x1, pool, above, k) for b, v in self[name].items()}
        return self.memo[key]


def build_index(cal: dict) -> Index:
    """kernel class -> {"kernel_s" | "ci_low_s" | "ci_high_s": [Sized, ...]} over every calibrated instance."""
    index = Index()
    for i, p in enumerate(cal["passes"]):
        tag = p.get("tag", f"{(p.get('model') or {}).get('name', '')}|b{p['batch']}|t{p['prompt_len']}")
        for op, o in p["ops"].items():
            x0, x1 = o["size"]
            for name in {kernel_class(op), f"op:{op}"}:       # the class pooled, and the op's own instances
                d = index.setdefault(name, {"kernel_s": [], "ci_low_s": [], "ci_high_s": []})
                for key in d:
                    d[key].append(Sized(p["phase"], x0, x1, o.get(key, o["kernel_s"]), tag, o.get("row_len", 0.0)))
    return index


def predict_pass(cal: dict, model: ModelSpec, phase: str, batch: int, prompt_len: int, context_len: int = 0,
                 max_cache_len: int | None = None, index: dict | None = None,
                 model_ref: str | None = None, kind: str | None = None) -> PassPrediction:
    """prompt_len: the prefill's tokens (and, for decode, the prompt the cache started from); context_len: decode's
    tokens in the cache before the step. `index`: build_index of the sized calibration, when predicting many.
    model_ref: how the user named the model (for the advice in a refusal). kind: framework.step_kind's, when the
    caller knows it better than prompt_len and context_len say."""
    why = refusal(model)
    if why is not None:
        raise TheoryError(why)
    check_positions(model, (prompt_len if phase == "prefill" else context_len + 1))
    cal = sized(upgrade(cal, model, model_ref), model)
    if not any(p["phase"] == phase for p in cal["passes"]):
        raise TheoryError(f"the calibration has no {phase} pass (a decode step needs --generated 2 or more)")
    index = index if index is not None else build_index(cal)
    if not isinstance(index, Index):                          # a plain dict built by hand: give it a memo
        index = _as_index(index)
    rows = count_ops(model, pass_workload(cal, model, phase, batch, prompt_len, context_len, max_cache_len))
    ops, statuses = {}, set()
    for r in rows:
        work, unit = op_work(r)
        inst = index.get(kernel_class(r.name))
        if not inst:
            raise TheoryError(f"the calibration holds no kernel for op {r.name!r} ({model.name} runs it); "
                              f"run `python -m bench kernels --model {model_ref or model.name} ...`")
        x0, x1 = op_size(r, model.head_dim, cal["dtype"], batch * model.num_attention_heads)
        pool, above = pools_phases(kernel_class(r.name)), rate_above_in_x0(kernel_class(r.name), phase)
        k = row_length(r)
        est = index.estimates(kernel_class(r.name), phase, x0, x1, pool, above, k)
        own = index.estimates(f"op:{r.name}", phase, x0, x1, pool, above, k) if f"op:{r.name}" in index else None
        if own and own["kernel_s"].status == CALIBRATED:      # the op's own shape was timed: its own time
            est = own
        e = est["kernel_s"]
        ops[r.name] = {"count": r.count, "kernel_s": e.time_s, "ci_low_s": est["ci_low_s"].time_s,
                       "ci_high_s": est["ci_high_s"].time_s, "time_s": r.count * e.time_s, "work": work,
                       "work_unit": unit, "size": [x0, x1], "row_len": k, "kernel_class": kernel_class(r.name),
                       "status": e.status, "own_shape_calibrated": e.status == CALIBRATED,
                       "extrapolation_ratio": e.extrapolation_ratio, "regime_crossed": e.regime_crossed,
                       "group": r.group, "flops": r.flops, "bytes": r.bytes, "weight_bytes": r.weight_bytes, "act_bytes": r.act_bytes, "kv_read_bytes": r.kv_read_bytes,
                       "kv_write_bytes": r.kv_write_bytes}
        statuses.add(e.status)
    instances = sum(r.count for r in rows)
    kind = kind or step_kind(phase, prompt_len, context_len)
    fw = framework_estimate(cal["passes"], phase, instances, kind)
    same = [p for p in cal["passes"] if p["phase"] == phase and p["op_instances"] == instances and p["batch"] == batch
            and p["prompt_len"] == prompt_len and (phase == "prefill" or p["context_len"] == context_len)
            and p.get("framework_s") is not None
            and step_kind(phase, p.get("prompt_len"), p.get("context_len")) == kind]
    if same:                                  # this very pass was calibrated: its own framework cost
        fw = dataclasses.replace(fw, time_s=same[0]["framework_s"])
    fw_status = CALIBRATED if same else EXTRAPOLATED if not fw.inside else INTERPOLATED
    statuses.add(fw_status)
    framework = {"time_s": fw.time_s, "fixed_s": fw.fixed_s, "per_instance_s": fw.per_instance_s, "step_kind": kind,
                 "depths": fw.depths, "one_depth": fw.one_depth, "held": fw.held, "status": fw_status}
    residual = None
    if any(p["phase"] == phase and p.get("residual_s") is not None for p in cal["passes"]):
        res = framework_estimate(cal["passes"], phase, instances, kind, key="residual_s")
        residual = {"time_s": res.time_s, "fixed_s": res.fixed_s, "per_instance_s": res.per_instance_s,
                    "depths": res.depths, "one_depth": res.one_depth,
                    "status": INTERPOLATED if res.inside else EXTRAPOLATED}
        statuses.add(residual["status"])
    status = next(s for s in (EXTRAPOLATED, INTERPOLATED, CALIBRATED) if s in statuses)
    res_s = residual["time_s"] if residual else 0.0
    return PassPrediction(phase, context_len if phase == "decode" else 0,
                          sum(o["time_s"] for o in ops.values()) + fw.time_s + res_s, fw.time_s, ops, status,
                          framework, res_s, residual)


def _as_index(d: dict) -> Index:
    out = Index()
    out.update(d)
    return out


def request(cal: dict, model: ModelSpec, batch: int, prompt_len: int, generated: int,
            max_cache_len: int | None = None, model_ref: str | None = None) -> dict:
    """TTFT = the prefill; TPOT = the mean decode step (contexts prompt_len … prompt_len+generated−2), each with
    its interval (interval.py) and how far beyond the calibrated sizes its ops went."""
    mcl = max_cache_len or prompt_len + generated
    cal = sized(upgrade(cal, model, model_ref), model)
    index = build_index(cal)
    errors = class_errors(index)
    ttft = predict_pass(cal, model, "prefill", batch, prompt_len, 0, mcl, index, model_ref)
    steps = [predict_pass(cal, model, "decode", batch, prompt_len, prompt_len + s, mcl, index, model_ref)
             for s in range(generated - 1)]
    tpot = sum(s.time_s for s in steps) / len(steps) if steps else None
    iv = lambda p: pass_interval(p.ops, p.framework_s + p.residual_s, p.phase, errors)
    ttft_iv, step_iv = iv(ttft), [iv(s) for s in steps]
    mean = lambda key: sum(x[key] for x in step_iv) / len(step_iv) if step_iv else None
    passes = [ttft] + steps
    return {"time_to_first_token_s": ttft.time_s, "time_per_output_token_s": tpot, "decode_steps": len(steps),
            "residual_ttft_s": ttft.residual_s,
            "residual_tpot_s": sum(s.residual_s for s in steps) / len(steps) if steps else None,
            "request_time_s": ttft.time_s + sum(s.time_s for s in steps),
            "time_to_first_token_interval_s": [ttft_iv["low_s"], ttft_iv["high_s"]],
            "time_per_output_token_interval_s": [mean("low_s"), mean("high_s")] if steps else None,
            "interval_includes_loo": ttft_iv["loo_known"] and all(x["loo_known"] for x in step_iv),
            "extrapolation_ratio": max(o["extrapolation_ratio"] for p in passes for o in p.ops.values()),
            "framework_one_depth": ttft.framework["one_depth"],
            "own_shapes": own_shapes(passes), "calibration_models": calibration_models(cal),
            "extrapolated": any(s.extrapolated for s in passes),
            "interpolated": any(s.interpolated for s in passes)}


def without_residuals(cal: dict) -> dict:
    """The calibration with no pass's residual_s: kernels and framework only (how far the box moved is read from
    these, so one full trajectory's noise in a residual is not taken for the box's drift)."""
    return {**cal, "passes": [{k: v for k, v in p.items() if k != "residual_s"} for p in cal["passes"]]}


def own_shapes(passes: list[PassPrediction]) -> dict:
    """Per op: were this target's own shapes in the calibration (every pass of it exactly calibrated)?"""
    ops: dict[str, bool] = {}
    for p in passes:
        for op, o in p.ops.items():
            ops[op] = ops.get(op, True) and o["own_shape_calibrated"]
    return ops


def calibration_models(cal: dict) -> list[str]:
    names = [(p.get("model") or cal.get("model") or {}).get("name", "?") for p in cal["passes"]]
    return sorted(set(names))


def status_line(p: PassPrediction) -> str | None:
    """One line saying which ops were not calibrated, or None when every op and the framework were."""
    if p.status == CALIBRATED:
        return None
    by = {s: [op for op, o in p.ops.items() if o["status"] == s] for s in (INTERPOLATED, EXTRAPOLATED)}
    parts = []
    if by[INTERPOLATED]:
        parts.append(f"{len(by[INTERPOLATED])} of {len(p.ops)} ops interpolated between calibrated sizes by their size")
    if by[EXTRAPOLATED]:
        parts.append(f"{len(by[EXTRAPOLATED])} extrapolated beyond them at the nearest size's achieved rate "
                     f"({', '.join(by[EXTRAPOLATED])})")
    ratio = max((o["extrapolation_ratio"] for o in p.ops.values()), default=1.0)
    if ratio > 1.0:
        parts.append(f"up to x{ratio:.2f} beyond the nearest calibrated size")
    if any(o["regime_crossed"] for o in p.ops.values()):
        parts.append("some ops from the other phase's kernels (no instance of their regime calibrated)")
    fw = p.framework or {}
    if fw.get("one_depth"):
        parts.append("the framework cost from one depth only (its fixed part per pass is unknown: calibrate two "
                     "models of different depth)")
    elif fw.get("status") == EXTRAPOLATED:
        parts.append("the framework cost beyond the calibrated depths")
    res = p.residual
    if res is not None and res["one_depth"]:
        parts.append("the full-pass residual from one depth only")
    elif res is not None and res["status"] == EXTRAPOLATED:
        parts.append("the full-pass residual beyond the calibrated depths")
    if not parts:
        parts.append("every op calibrated; the framework's cost from its fit over the calibrated depths")
    return f"{p.status}: this workload is not in the calibration; " + "; ".join(parts)
