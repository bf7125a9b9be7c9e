"""What `python -m bench.kernels.versus` measures again before trusting a calibration on this box now: the
calibration's largest decode kernels (did the box change speed?) and the model's cache state (would the rule
time its kernels in the other state today?)."""
import dataclasses

from bench.ceilings import llc_sweep
from bench.kernels.microbench import time_kernel
from bench.kernels.plan import passes
from bench.kernels.point import cache_margin, llc_of
from bench.kernels.shapes import pass_kernels
from theory.calibration import SHAPE_FIELDS

DRIFT_OPS = 3


def box_drift(cal: dict, spec, device) -> dict | None:
    """The calibration's largest decode kernels (count × kernel time, its first workload's first decode step) timed
    again now: Σ count × now / Σ count × calibrated, at the shapes of the model the calibration measured (which may
    differ from the model being predicted). None when the calibration holds no such pass (or is format 1)."""
    if "workloads" not in cal:
        return None
    spec = dataclasses.replace(spec, **{k: cal["model"][k] for k in SHAPE_FIELDS})
    w = cal["workloads"][0]
    first = next((x for x in cal["passes"] if x["phase"] == "decode" and x["batch"] == w["batch"]
                  and x["prompt_len"] == w["prompt_len"]), None)
    if first is None:
        return None
    shapes = passes(spec, w["batch"], w["prompt_len"], w["generated"], cal["dtype"], cal.get("attention", "sdpa"),
                    cal.get("cache", "dynamic"), w.get("max_cache_len"))
    kernels = {op: k for op, _, k in pass_kernels(shapes[1])}
    top = sorted(first["ops"].items(), key=lambda kv: -kv[1]["count"] * kv[1]["kernel_s"])[:DRIFT_OPS]
    now = {op: time_kernel(kernels[op], device, w["cache_state"], cal.get("llc_bytes")).median_s for op, _ in top}
    ratio = sum(o["count"] * now[op] for op, o in top) / sum(o["count"] * o["kernel_s"] for op, o in top)
    return {"ops": [op for op, _ in top], "now_s": now, "now_over_calibrated": ratio}


def calibrated_state(cal: dict, batch: int, prompt_len: int) -> str | None:
    """The cache state the calibration timed this workload's kernels in (the nearest workload's if it lacks this
    one; the file's own for format 1)."""
    ws = cal.get("workloads") or []
    if not ws:
        return cal.get("cache_state")
    w = min(ws, key=lambda w: (abs(w["batch"] - batch), abs(w["prompt_len"] - prompt_len)))
    return w.get("cache_state", cal.get("cache_state"))


def cache_state_now(cal: dict, spec, batch: int, prompt_len: int, generated: int, device) -> dict:
    """The model's cache state by the rule on this box now (the effective LLC measured again: ~2 s on CPU; CUDA's
    L2 from its properties) beside the one the calibration timed, and whether they differ."""
    llc = llc_of(device)
    sweep = llc_sweep(device, cal["dtype"], llc)
    effective = (sweep or {}).get("effective_bytes") or llc
    margin = cache_margin(spec, batch, prompt_len + generated, cal["dtype"], effective)
    now = margin["rule_state"] if margin else "dram"
    then = calibrated_state(cal, batch, prompt_len)
    return {"cache_state_calibrated": then, "cache_state_now": now, "cache_margin_now": margin,
            "llc_effective_bytes_calibrated": cal.get("llc_effective_bytes"), "llc_effective_bytes_now": effective,
            "cache_state_moved": then is not None and then != now}


def aba(before: dict | None, after: dict | None, m_ttft: float, m_tpot: float, p_ttft: float, p_tpot: float) -> dict:
    """The interleaved check: the calibration's kernels timed before (A) and after (A) the model (B). The drift
    scale is the geometric mean of the two now/calibrated ratios (the box's speed while the model ran, against
    the calibration's); the error is given as measured and with the prediction scaled by it."""
    if not (before and after):
        return {"box_before_over_calibrated": None, "box_after_over_calibrated": None, "box_moved_during_model": None,
                "drift_scale": None, "ttft_error_drift_scaled": None, "tpot_error_drift_scaled": None}
    b, a = before["now_over_calibrated"], after["now_over_calibrated"]
    scale = (a * b) ** 0.5
    return {"box_before_over_calibrated": b, "box_after_over_calibrated": a, "box_moved_during_model": a / b - 1,
            "drift_scale": scale, "ttft_error_drift_scaled": m_ttft / (p_ttft * scale) - 1,
            "tpot_error_drift_scaled": m_tpot / (p_tpot * scale) - 1}
