"""`python -m bench.kernels.versus`: a calibration's prediction (kernels alone) beside the model, built and measured.

Builds the model (random weights), runs one warm-up trajectory, then `--repeats` whole trajectories (prefill +
generated−1 decode steps on the model's own cache), and prints measured TTFT (median prefill) and TPOT (the mean
over decode steps of each step's median over repeats, as `bench run` reads a step: measured()) with their ranges,
theory's prediction from the calibration for the same workload, and measured / predicted − 1. Run it right after
`python -m bench kernels` on a quiet box: kernels and model timed minutes apart on a box that changes speed do not
compare. So that a miss can be told from a box that
moved, the check is interleaved A-B-A: the calibration's DRIFT_OPS largest decode kernels (at its first workload's
shapes) are timed right before the model and again right after it, against their calibrated times
(`box_before_over_calibrated`, `box_after_over_calibrated`, `box_moved_during_model`), and the error is reported
both as measured (`*_error`) and with the prediction scaled by the measured drift (`*_error_drift_scaled`).
The model's cache state is judged again too (the effective LLC measured now): a calibration timed in the other
state than the rule gives this box today is said on the first line (`cache_state_moved`).

`--calibrate-from A.json B.json` instead times the calibration of those other models here, interleaved with the
model: `--rounds` rounds of every calibration kernel before its first timed trajectory and after each one (A B A
... A, bench/kernels/interleave.py). The prediction is from every round; the same target predicted from the last
gap's rounds against the first gap's is how far the box moved (`box_moved_first_to_last_*`, `within_drift_bound`:
both within ±5%), and the error from the first gap's rounds
alone is kept beside it (`first_gap_only`), what calibrating first and measuring after gives. Each trajectory is
also its own A-B-A (`trajectories`): its TTFT and TPOT against the prediction from the two gaps around it, and how
far the box moved across it; `trajectories_within_drift_bound` counts those whose box held within ±5%. After each
gap's rounds, `--settle` trajectories run before the timed one and are not scored (default 1; 0 is the design the
sets before 2026-12-03 ran): `settle` says how their TPOT and TTFT compared with the timed trajectory's.
With `--own-kernels` the target's own kernels and framework are sampled in the same rounds, kept apart from the
prediction, and each phase's error is split (`own_kernels`, theory/calibration/against.py) into the composition's
(the model against its own pieces) and the interpolation's (its own pieces against those predicted from the other
models), with the ops that carry the latter. With `--full-passes` the calibration models themselves are built and
timed after each gap's rounds; what their passes cost beyond their kernels and framework (`residual_s` per
calibrated pass) is fitted over depth and added to the target's prediction (`residuals` says what was measured
and what it added).
"""
import json
import sys
import time
from pathlib import Path

# torch-free down to the parser (--help is instant); the model, the trajectory and bench/kernels/recheck.py
# (what is timed again) are imported by main
from bench.kernels import first_paragraph
from bench.kernels.scoring import DRIFT_BOUND_REL, drift_summary, measured, per_trajectory, settle_summary
from theory.calibration import SHAPE_FIELDS, load_calibration, request
from theory.calibration.predict import without_residuals
from theory.calibration.against import phase_parts, split, top_ops
from theory.calibration.family import refusal
from theory.capacity import check_positions
from theory.cliutil import HelpFormatter, OneLineParser, run_main
from theory.hfconfig import load_model


def build_parser() -> OneLineParser:
    p = OneLineParser(prog="python -m bench.kernels.versus", description=first_paragraph(__doc__),
                      formatter_class=HelpFormatter,
                      epilog="examples:\n  python -m bench.kernels.versus --calibration cal.json --model tinyllama-1.1b "
                             "--prompt-len 128\n  python -m bench.kernels.versus --calibrate-from a.json b.json "
                             "--model tinyllama-1.1b --prompt-len 128 --out-dir results/try-1")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--calibration", type=Path, help="a calibration JSON from `python -m bench kernels`, timed before")
    src.add_argument("--calibrate-from", nargs="+", metavar="MODEL",
                     help="other models (preset names or config.json paths) to calibrate from here and now, "
                          "interleaved with the model: --rounds rounds of their kernels before its first timed "
                          "trajectory and after each one (sdpa, dynamic cache; bench/kernels/interleave.py)")
    p.add_argument("--rounds", type=int, default=8,
                   help="with --calibrate-from: kernel rounds (one sample of every calibration kernel each) before "
                        "the model's first timed trajectory and after each one")
    p.add_argument("--settle", type=int, default=1,
                   help="with --calibrate-from: trajectories after each gap's rounds, before the timed one, not "
                        "scored (the first pass after other kernels held the box); their times are kept")
    p.add_argument("--own-kernels", action="store_true",
                   help="with --calibrate-from: also sample the target's own kernels and framework in the same rounds, "
                        "never used for the prediction, and split each phase's error into the composition's and the "
                        "interpolation's (rounds take longer)")
    p.add_argument("--full-passes", action="store_true",
                   help="with --calibrate-from: also build the calibration models and time one trajectory of each "
                        "after every gap's rounds; their passes' time beyond kernels and framework is added to the "
                        "prediction, fitted over depth (needs their weights in memory)")
    p.add_argument("--out-dir", type=Path,
                   help="with --calibrate-from: write the calibrations (pooled, first gap's, last gap's) and the "
                        "result here")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                   help="with --calibrate-from: where to time (auto: CUDA if present)")
    p.add_argument("--model", required=True, help="preset name or path to a Hugging Face config.json")
    p.add_argument("--batch", type=int, default=1, help="sequences per pass")
    p.add_argument("--prompt-len", type=int, required=True, help="prompt tokens")
    p.add_argument("--generated", type=int, default=8, help="tokens generated (prefill + generated−1 decode steps)")
    p.add_argument("--repeats", type=int, default=3, help="timed trajectories after one warm-up")
    p.add_argument("--threads", type=int, help="torch threads (default: the calibration's; another count is refused)")
    return p


def ms(seconds: float) -> str:
    """Milliseconds to four significant figures or more (a 0.6 ms TTFT is not "1 ms"; 5,470.2 ms keeps its tenths)."""
    v = seconds * 1e3
    return f"{v:,.{1 if v >= 100 else 2 if v >= 10 else 3}f}"


def state_line(state: dict, name: str) -> str:
    """One line: the calibration timed its kernels in the other cache state than the rule gives this box now."""
    mib = lambda b: "?" if b is None else f"{b / 2**20:.1f}"
    m = state["cache_margin_now"] or {}
    return (f"CACHE STATE MOVED: the calibration timed its kernels as {state['cache_state_calibrated']} (effective "
            f"LLC {mib(state['llc_effective_bytes_calibrated'])} MiB then), but on this box now {name} streaming "
            f"{mib(m.get('streamed_bytes'))} MiB per pass is {state['cache_state_now']} (effective LLC "
            f"{mib(state['llc_effective_bytes_now'])} MiB now): the prediction below is from the other state; "
            f"calibrate again with `python -m bench kernels ... --cache-state {state['cache_state_now']}`")


def measured_line(out: dict) -> str:
    r_tpot, r_ttft = out["measured_tpot_range_s"], out["measured_ttft_range_s"]
    return (f"TPOT measured {ms(out['measured_tpot_s'])} ms (range {ms(r_tpot[0])}–{ms(r_tpot[1])}, "
            f"{out['repeats']} repeats) vs predicted {ms(out['predicted_tpot_s'])} ms ({out['prediction']}): "
            f"{out['tpot_error']:+.1%}; TTFT measured {ms(out['measured_ttft_s'])} ms (range {ms(r_ttft[0])}–"
            f"{ms(r_ttft[1])}) vs predicted {ms(out['predicted_ttft_s'])} ms: {out['ttft_error']:+.1%}")


def how_predicted(pred: dict) -> str:
    return "extrapolated" if pred["extrapolated"] else "interpolated" if pred["interpolated"] else "calibrated"


def trajectory_line(t: dict) -> str:
    return (f"trajectory {t['trajectory']} against the rounds around it: TPOT {t['tpot_error']:+.1%}, TTFT "
            f"{t['ttft_error']:+.1%}; the box moved {t['box_moved_tpot']:+.1%} (TPOT) and {t['box_moved_ttft']:+.1%} "
            f"(TTFT) across it: {'within' if t['within_drift_bound'] else 'beyond'} the ±{DRIFT_BOUND_REL:.0%} bound")


def residuals(pooled: dict, pred: dict) -> dict:
    """What --full-passes measured (each calibrated pass's residual_s, ms-readable in seconds) and what it added to
    the target's TTFT and TPOT."""
    per = [{"model": (p.get("model") or {}).get("name"), "phase": p["phase"], "context_len": p["context_len"],
            "op_instances": p["op_instances"], "full_pass_s": p.get("full_pass_s"), "residual_s": p.get("residual_s"),
            "framework_s": p["framework_s"], "full_passes": p.get("full_passes")} for p in pooled["passes"]]
    return {"calibrated": per, "added_to_ttft_s": pred.get("residual_ttft_s"), "added_to_tpot_s": pred.get("residual_tpot_s")}


def residual_line(r: dict) -> str:
    per = ", ".join(f"{c['model']} {c['phase']}{'' if c['phase'] == 'prefill' else '@' + str(c['context_len'])} "
                    f"{ms(c['residual_s'])}" for c in r["calibrated"] if c["residual_s"] is not None)
    return (f"full passes of the calibration models beyond their kernels and framework (ms): {per}; added to the "
            f"prediction: TPOT {ms(r['added_to_tpot_s'] or 0)} ms, TTFT {ms(r['added_to_ttft_s'] or 0)} ms")


def own_split(pooled: dict, own: dict, spec, a, m: dict) -> dict:
    """Each phase's error against the target's own kernels from every round (theory/calibration/against.py)."""
    pred = phase_parts(pooled, spec, a.batch, a.prompt_len, a.generated)
    mine = phase_parts(own, spec, a.batch, a.prompt_len, a.generated)
    out = {"prefill": split(m["measured_ttft_s"], pred["prefill"], mine["prefill"]), "decode": None}
    if pred["decode"] is not None:
        out["decode"] = split(m["measured_tpot_s"], pred["decode"], mine["decode"])
    return out


def own_line(s: dict, what: str) -> str:
    """One line: a phase's error as composition × interpolation, and the ops carrying the interpolation's."""
    fw = s["framework_own_over_predicted"]
    ops = ", ".join(f"{op} {share * 100:+.1f} pts" for op, share in top_ops(s))
    return (f"{what} {s['error']:+.1%} against the target's own kernels in the same rounds (not used for the "
            f"prediction): composition {s['composition_error']:+.1%} (the model over its own kernels and framework) "
            f"× interpolation {s['interpolation_error']:+.1%} (its own over predicted: kernels "
            f"{s['kernels_own_over_predicted']:+.1%}, framework {'—' if fw is None else format(fw, '+.1%')}); "
            f"largest op shares: {ops}")


def interleaved_main(a) -> int:
    """--calibrate-from: kernel rounds A B A ... A in this process (bench/kernels/interleave.py), the prediction from
    every round's samples, the target's own measurements in none of them."""
    from bench.kernels.cli import calibration_points
    spec = load_model(a.model)
    per_model = calibration_points(a.calibrate_from, [a.batch], [a.prompt_len], a.generated, "auto", "sdpa",
                                   "dynamic")
    own = calibration_points([a.model], [a.batch], [a.prompt_len], a.generated, "auto", "sdpa", "dynamic")[0] \
        if a.own_kernels else None
    shape = lambda m: tuple(getattr(m, k) for k in SHAPE_FIELDS)
    same = [points[0].spec().name for points in per_model if shape(points[0].spec()) == shape(spec)]
    if same:                                  # by shape, not name: a preset and its config.json are one model
        raise ValueError(f"{spec.name} has the shape of --calibrate-from's {same[0]}: a never-built prediction "
                         "calibrates from other models")
    if a.out_dir is not None and a.out_dir.exists() and any(a.out_dir.iterdir()):
        raise ValueError(f"--out-dir {a.out_dir} is not empty: every try keeps its own folder")
    if a.rounds < 1:
        raise ValueError("--rounds must be at least 1")
    if a.settle < 0:
        raise ValueError("--settle must be 0 or more")
    why = refusal(spec)                       # what theory would refuse after the try, refused before timing it
    if why is not None:
        raise ValueError(why)
    check_positions(spec, a.prompt_len + a.generated)
    if a.out_dir is not None:
        a.out_dir.mkdir(parents=True, exist_ok=True)
    from bench.devices.select import get_device
    from bench.kernels.interleave import interleaved
    from bench.store.files import write_json
    device = get_device(a.device, a.threads or 1)
    dtype = per_model[0][0].resolved_dtype(device.kind)
    say = lambda text: print(text, file=sys.stderr, flush=True)
    got = interleaved(device, spec, per_model, dtype, a.batch, a.prompt_len, a.generated, a.repeats, a.rounds,
                      say=say, settle=a.settle, own=own, full=a.full_passes)
    if a.out_dir is not None:                 # kept before anything can refuse them
        for k in ("pooled", "first", "last"):
            write_json(a.out_dir / f"calibration-{k}.json", got[k])
        for i, cal in enumerate(got["around"]):          # what each trajectory's own A-B-A predicts from
            write_json(a.out_dir / f"calibration-around-{i + 1}.json", cal)
        if got["own"] is not None:                        # the witness: the target's own kernels, every round
            write_json(a.out_dir / "calibration-own.json", got["own"])
    ask = lambda cal: request(cal, spec, a.batch, a.prompt_len, a.generated)
    pred, each_gap = ask(got["pooled"]), [ask(c) for c in got["each_gap"]]
    first, last = each_gap[0], each_gap[-1]
    # the box's drift from kernels and framework alone: a --full-passes residual rests on one trajectory per gap
    box = [ask(without_residuals(c)) for c in got["each_gap"]] if a.full_passes else each_gap
    box_pooled = ask(without_residuals(got["pooled"])) if a.full_passes else pred
    trajectories = per_trajectory(got["runs"], box, [ask(c) for c in got["around"]])
    m = measured(got["runs"])
    p_ttft, p_tpot = pred["time_to_first_token_s"], pred["time_per_output_token_s"]
    out = {"model": spec.name, "batch": a.batch, "prompt_len": a.prompt_len, "generated": a.generated,
           "dtype": dtype, "threads": device.threads, "repeats": a.repeats, "build_s": got["build_s"], **m,
           "predicted_ttft_s": p_ttft, "predicted_tpot_s": p_tpot,
           "predicted_ttft_interval_s": pred["time_to_first_token_interval_s"],
           "predicted_tpot_interval_s": pred["time_per_output_token_interval_s"], "prediction": how_predicted(pred),
           "ttft_error": m["measured_ttft_s"] / p_ttft - 1, "tpot_error": m["measured_tpot_s"] / p_tpot - 1,
           "calibration": "interleaved", "calibrated_from": [points[0].spec().name for points in per_model],
           "rounds_per_gap": a.rounds, "gaps": len(got["gaps"]), "rounds_wall_s": got["pooled"]["wall_s"],
           "measured_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "first_gap_only": {"predicted_ttft_s": first["time_to_first_token_s"],
                              "predicted_tpot_s": first["time_per_output_token_s"],
                              "ttft_error": m["measured_ttft_s"] / first["time_to_first_token_s"] - 1,
                              "tpot_error": m["measured_tpot_s"] / first["time_per_output_token_s"] - 1},
           **drift_summary(box_pooled, box[0], box[-1]), "trajectories": trajectories,
           "trajectories_within_drift_bound": sum(t["within_drift_bound"] for t in trajectories),
           "settle": settle_summary(got["settle_runs"], got["runs"]),
           "runs_s": got["runs"], "settle_runs_s": got["settle_runs"],
           "own_shapes": pred["own_shapes"], "full_passes": a.full_passes}
    if a.full_passes:
        out["residuals"] = residuals(got["pooled"], pred)
    if got["own"] is not None:
        out["own_kernels"] = own_split(got["pooled"], got["own"], spec, a, m)
    if a.out_dir is not None:
        write_json(a.out_dir / "versus.json", out)
    print(json.dumps(out, indent=2))
    print(measured_line(out), file=sys.stderr)
    print(f"interleaved: {a.rounds} kernel rounds before the model and after each of {a.repeats} trajectories; the "
          f"box moved {out['box_moved_first_to_last_tpot']:+.1%} (TPOT) and {out['box_moved_first_to_last_ttft']:+.1%} "
          f"(TTFT) from the first gap's rounds to the last's: "
          f"{'within' if out['within_drift_bound'] else 'BEYOND'} the ±{DRIFT_BOUND_REL:.0%} drift bound; from "
          f"the first gap's rounds alone: TPOT {out['first_gap_only']['tpot_error']:+.1%}, TTFT "
          f"{out['first_gap_only']['ttft_error']:+.1%}", file=sys.stderr)
    for t in trajectories:
        print(trajectory_line(t), file=sys.stderr)
    if "residuals" in out:
        print(residual_line(out["residuals"]), file=sys.stderr)
    if "own_kernels" in out:
        for phase, text in (("decode", "TPOT"), ("prefill", "TTFT")):
            if out["own_kernels"].get(phase):
                print(own_line(out["own_kernels"][phase], text), file=sys.stderr)
    s = out["settle"]
    if s["per_gap"]:
        print(f"settling trajectories (not scored), first after each gap's rounds over the timed one: TPOT "
              f"x{s['median_tpot_over_timed']:.3f}, TTFT x{s['median_ttft_over_timed']:.3f} (median over "
              f"{len(s['gaps'])} gaps)", file=sys.stderr)
    return 0


def main(argv=None) -> int:
    a = build_parser().parse_args(argv)
    if min(a.batch, a.prompt_len, a.generated - 1, a.repeats, 1 if a.threads is None else a.threads) < 1:
        raise ValueError("--batch, --prompt-len, --repeats, --threads must be at least 1 and --generated at least 2")
    if a.calibrate_from:
        return interleaved_main(a)
    if a.out_dir is not None:
        raise ValueError("--out-dir goes with --calibrate-from (a --calibration file is already written)")
    if a.full_passes:
        raise ValueError("--full-passes goes with --calibrate-from (the calibration models are timed in its gaps)")
    if a.own_kernels:
        raise ValueError("--own-kernels goes with --calibrate-from (its rounds are where the own kernels are sampled)")
    cal = load_calibration(str(a.calibration))
    cal_threads = cal.get("threads")
    if a.threads is not None and cal_threads is not None and a.threads != cal_threads:
        raise ValueError(f"{a.calibration} was measured with {cal_threads} thread(s), not --threads {a.threads}: "
                         "kernels and model on different thread counts do not compare (calibrate again with it)")
    a.threads = a.threads or cal_threads or 1
    spec = load_model(a.model)
    pred = request(cal, spec, a.batch, a.prompt_len, a.generated)
    import torch

    from bench.devices.select import get_device
    from bench.kernels.recheck import aba, box_drift, cache_state_now
    from bench.model import build_model
    from bench.timing.trajectory import run_trajectory
    device = get_device("cpu" if cal.get("device") == "cpu" else "auto", a.threads)
    dtype = cal["dtype"]
    state = cache_state_now(cal, spec, a.batch, a.prompt_len, a.generated, device)
    if state["cache_state_moved"]:                  # said first: the comparison below is across cache states
        print(state_line(state, spec.name), file=sys.stderr, flush=True)
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
    m = measured(runs)
    m_ttft, m_tpot = m["measured_ttft_s"], m["measured_tpot_s"]
    p_ttft, p_tpot = pred["time_to_first_token_s"], pred["time_per_output_token_s"]
    how = how_predicted(pred)
    out = {"model": spec.name, "batch": a.batch, "prompt_len": a.prompt_len, "generated": a.generated,
           "dtype": dtype, "threads": device.threads, "repeats": a.repeats, "build_s": build_s,
           **m,
           "predicted_ttft_s": p_ttft, "predicted_tpot_s": p_tpot, "prediction": how,
           "ttft_error": m_ttft / p_ttft - 1, "tpot_error": m_tpot / p_tpot - 1, "calibration": str(a.calibration),
           "runs_s": runs,
           "calibration_utc": cal.get("utc_time"), "measured_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "box_drift_ops": drift["ops"] if drift else None,
           "box_now_over_calibrated": drift["now_over_calibrated"] if drift else None,
           **aba(before, drift, m_ttft, m_tpot, p_ttft, p_tpot), **state}
    print(json.dumps(out, indent=2))
    print(measured_line(out), file=sys.stderr)
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
