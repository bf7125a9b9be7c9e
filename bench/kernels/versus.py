"""`python -m bench.kernels.versus`: a calibration's prediction (kernels alone) beside the model, built and measured.

Builds the model (random weights), runs one warm-up trajectory, then `--repeats` whole trajectories (prefill +
generated−1 decode steps on the model's own cache), and prints measured TTFT (median prefill) and TPOT (median
over repeats of the mean decode step) with their ranges, theory's prediction from the calibration for the same
workload, and measured / predicted − 1. Run it right after `python -m bench kernels` on a quiet box: kernels and
model timed minutes apart on a box that changes speed do not compare. So that a miss can be told from a box that
moved, the check is interleaved A-B-A: the calibration's DRIFT_OPS largest decode kernels (at its first workload's
shapes) are timed right before the model and again right after it, against their calibrated times
(`box_before_over_calibrated`, `box_after_over_calibrated`, `box_moved_during_model`), and the error is reported
both as measured (`*_error`) and with the prediction scaled by the measured drift (`*_error_drift_scaled`).
"""
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from bench.model import build_model
from bench.devices.select import get_device
from bench.kernels.microbench import time_kernel
from bench.kernels.plan import passes
from bench.kernels.shapes import pass_kernels
from bench.timing.trajectory import run_trajectory
from theory.calibration import SHAPE_FIELDS, load_calibration, request
from theory.cliutil import HelpFormatter, OneLineParser, run_main
from theory.hfconfig import load_model


def build_parser() -> OneLineParser:
    p = OneLineParser(prog="python -m bench.kernels.versus", description=__doc__.strip().splitlines()[0],
                      formatter_class=HelpFormatter,
                      epilog="example:\n  python -m bench.kernels.versus --calibration cal.json --model tinyllama-1.1b "
                             "--prompt-len 128")
    p.add_argument("--calibration", type=Path, required=True, help="a calibration JSON from `python -m bench kernels`")
    p.add_argument("--model", required=True, help="preset name or path to a Hugging Face config.json")
    p.add_argument("--batch", type=int, default=1, help="sequences per pass")
    p.add_argument("--prompt-len", type=int, required=True, help="prompt tokens")
    p.add_argument("--generated", type=int, default=8, help="tokens generated (prefill + generated−1 decode steps)")
    p.add_argument("--repeats", type=int, default=3, help="timed trajectories after one warm-up")
    p.add_argument("--threads", type=int, help="torch threads (default: the calibration's; another count is refused)")
    return p


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


def ms(seconds: float) -> str:
    """Milliseconds to four significant figures or more (a 0.6 ms TTFT is not "1 ms"; 5,470.2 ms keeps its tenths)."""
    v = seconds * 1e3
    return f"{v:,.{1 if v >= 100 else 2 if v >= 10 else 3}f}"


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


def main(argv=None) -> int:
    a = build_parser().parse_args(argv)
    if min(a.batch, a.prompt_len, a.generated - 1, a.repeats, 1 if a.threads is None else a.threads) < 1:
        raise ValueError("--batch, --prompt-len, --repeats, --threads must be at least 1 and --generated at least 2")
    cal = load_calibration(str(a.calibration))
    cal_threads = cal.get("threads")
    if a.threads is not None and cal_threads is not None and a.threads != cal_threads:
        raise ValueError(f"{a.calibration} was measured with {cal_threads} thread(s), not --threads {a.threads}: "
                         "kernels and model on different thread counts do not compare (calibrate again with it)")
    a.threads = a.threads or cal_threads or 1
    spec = load_model(a.model)
    pred = request(cal, spec, a.batch, a.prompt_len, a.generated)
    device = get_device("cpu" if cal.get("device") == "cpu" else "auto", a.threads)
    dtype = cal["dtype"]
    t0 = time.perf_counter()
    model = build_model(spec, device.torch_device, dtype, cal.get("attention", "sdpa"))
    build_s = time.perf_counter() - t0
    ids = torch.randint(0, spec.vocab_size, (a.batch, a.prompt_len), generator=torch.Generator().manual_seed(0))
    ids = ids.to(device.torch_device)
    cache = cal.get("cache", "dynamic")
    mcl = a.prompt_len + a.generated if cache == "static" else None
    run_trajectory(model, device, ids, a.generated, cache, mcl)                       # warm-up
    before = box_drift(cal, spec, device)                                             # A: the calibration's kernels
    runs = [run_trajectory(model, device, ids, a.generated, cache, mcl).times_s for _ in range(a.repeats)]   # B
    drift = box_drift(cal, spec, device)                                              # A again
    ttfts = [r[0] for r in runs]
    tpots = [statistics.fmean(r[1:]) for r in runs]
    m_ttft, m_tpot = statistics.median(ttfts), statistics.median(tpots)
    p_ttft, p_tpot = pred["time_to_first_token_s"], pred["time_per_output_token_s"]
    how = "extrapolated" if pred["extrapolated"] else "interpolated" if pred["interpolated"] else "calibrated"
    out = {"model": spec.name, "batch": a.batch, "prompt_len": a.prompt_len, "generated": a.generated,
           "dtype": dtype, "threads": device.threads, "repeats": a.repeats, "build_s": build_s,
           "measured_ttft_s": m_ttft, "measured_ttft_range_s": [min(ttfts), max(ttfts)],
           "measured_tpot_s": m_tpot, "measured_tpot_range_s": [min(tpots), max(tpots)],
           "predicted_ttft_s": p_ttft, "predicted_tpot_s": p_tpot, "prediction": how,
           "ttft_error": m_ttft / p_ttft - 1, "tpot_error": m_tpot / p_tpot - 1, "calibration": str(a.calibration),
           "calibration_utc": cal.get("utc_time"), "measured_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "box_drift_ops": drift["ops"] if drift else None,
           "box_now_over_calibrated": drift["now_over_calibrated"] if drift else None,
           **aba(before, drift, m_ttft, m_tpot, p_ttft, p_tpot)}
    print(json.dumps(out, indent=2))
    print(f"TPOT measured {ms(m_tpot)} ms (range {ms(min(tpots))}–{ms(max(tpots))}, {a.repeats} "
          f"repeats) vs predicted {ms(p_tpot)} ms ({how}): {out['tpot_error']:+.1%}; TTFT measured "
          f"{ms(m_ttft)} ms (range {ms(min(ttfts))}–{ms(max(ttfts))}) vs predicted {ms(p_ttft)} ms: "
          f"{out['ttft_error']:+.1%}", file=sys.stderr)
    if drift and before:
        print(f"A-B-A: the calibration's kernels ran x{out['box_before_over_calibrated']:.2f} their calibrated time "
              f"before the model and x{out['box_after_over_calibrated']:.2f} after (the box moved "
              f"{out['box_moved_during_model']:+.1%} while the model ran); error AS MEASURED: TPOT "
              f"{out['tpot_error']:+.1%}, TTFT {out['ttft_error']:+.1%}; with the calibration SCALED by the measured "
              f"drift (x{out['drift_scale']:.2f}): TPOT {out['tpot_error_drift_scaled']:+.1%}, TTFT "
              f"{out['ttft_error_drift_scaled']:+.1%}", file=sys.stderr)
    if drift:
        print(f"the calibration's {len(drift['ops'])} largest decode kernels ({', '.join(drift['ops'])}), timed again "
              f"now: x{drift['now_over_calibrated']:.2f} their calibrated time (x1.00: the box has not moved)",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main, errors=(ValueError,)))
