"""Leave-one-out over a run: each eager point predicted from the paired kernels of the *other* points of the same
run only, through the interpolation theory uses on a calibration (theory/calibration: regime, framework).

The calibration of a held-out point is what `bench kernels` would have written from the other points: per other
point of the same attention and cache, its prefill and its first and last decode step (compose.csv: each op's
paired kernel median and interval; framework.csv: the framework's cost). Every measured pass of the held-out point
is predicted (decode steps strided to at most STEPS_PER_POINT), and scored as |measured / predicted − 1|, the
median over a point's steps, then median and p90 over points per phase and per class. A point's classes are the
axes in which it differs from the run's most common value (width, depth, batch, context, cache, attention,
heads, shape); a point differing in none is `base`. The held-out point's own kernels are also set against their
interpolated times: the kernel-level error per (kernel class, phase).

It rests on the committed medians (compose.csv, framework.csv, measurements.csv); the per-round samples are not
needed. Points whose attention and cache no other point shares cannot be predicted and are counted as such.
"""
import statistics

import pandas as pd

from analysis.compose import load_compose
from analysis.join import SHAPE, row_spec
from analysis.yardstick import point_speeds
from theory.calibration.predict import FORMAT, build_index, predict_pass, sized
from theory.calibration.regime import kernel_class
from theory.errors import TheoryError

STEPS_PER_POINT = 16
CLASS_OF = {"hidden_size": "width", "intermediate_size": "width", "num_hidden_layers": "depth", "batch": "batch",
            "prompt_len": "context", "generated": "context", "cache": "cache", "attention": "attention",
            "kv_group": "heads", "head_dim": "shape", "vocab_size": "shape"}


def _p90(xs) -> float:
    return float(pd.Series(list(xs)).quantile(0.9))


def _score(errs: list[float]) -> dict:
    return {"median_abs_error": float(statistics.median(errs)), "p90_abs_error": _p90(errs), "points": len(errs)}


def point_classes(points: pd.DataFrame) -> dict[str, list[str]]:
    points = points.assign(kv_group=points["num_attention_heads"] // points["num_key_value_heads"])
    mode = {c: points[c].mode().iloc[0] for c in CLASS_OF}
    out = {}
    for _, p in points.iterrows():
        cls = sorted({CLASS_OF[c] for c in CLASS_OF if p[c] != mode[c]})
        out[p["point_id"]] = cls or ["base"]
    return out


def _passes(rows: pd.DataFrame, compose: pd.DataFrame, framework: pd.DataFrame) -> dict[str, list[dict]]:
    """Per point: its calibration passes (prefill, first and last decode step) as a calibration holds them."""
    fw = framework.set_index(["point_id", "phase", "step"])["framework_s"].to_dict()
    out: dict[str, list[dict]] = {}
    for pid, g in rows.groupby("point_id"):
        r0 = g.iloc[0]
        dec = g[g["phase"] == "decode"]["step"]
        keep = [("prefill", 0)] + ([("decode", int(dec.min())), ("decode", int(dec.max()))] if len(dec) else [])
        c = compose[compose["point_id"] == pid]
        model = {"name": pid, **{k: int(r0[k]) for k in SHAPE}}
        passes = []
        for phase, step in dict.fromkeys(keep):
            ops = c[(c["phase"] == phase) & (c["step"] == step)]
            row = g[(g["phase"] == phase) & (g["step"] == step)]
            if ops.empty or row.empty or pd.isna(fw.get((pid, phase, step))):
                continue
            passes.append({"phase": phase, "batch": int(r0["batch"]), "prompt_len": int(r0["prompt_len"]),
                           "context_len": int(row["context_len"].iloc[0]), "max_cache_len": _mcl(r0),
                           "framework_s": float(fw[(pid, phase, step)]), "op_instances": int(ops["count"].sum()),
                           "model": model, "tag": pid,
                           "ops": {o["op"]: {"count": int(o["count"]), "kernel_s": float(o["kernel_s"]),
                                             "ci_low_s": float(o["kernel_ci_low_s"]),
                                             "ci_high_s": float(o["kernel_ci_high_s"]), "work": 0.0}
                                   for _, o in ops.iterrows()}})
        out[pid] = passes
    return out


def _mcl(r) -> int | None:
    return int(r["max_cache_len"]) if r["cache"] == "static" and not pd.isna(r["max_cache_len"]) else None


def _scaled(passes: list[dict], kernel_factor: float, framework_factor: float) -> list[dict]:
    """A point's passes with its kernel times (and intervals) scaled by one factor and its framework by another."""
    return [{**x, "framework_s": x["framework_s"] * framework_factor,
             "ops": {op: {**o, **{k: o[k] * kernel_factor for k in ("kernel_s", "ci_low_s", "ci_high_s")}}
                     for op, o in x["ops"].items()}} for x in passes]


YARDSTICKS_AS = "scaled by the yardsticks' speed between points: kernels by the kernel yardsticks, framework by the dispatch probe"
CANARY_AS = "scaled by the canary's drift between points"


def drift_factors(pid: str, q: str, speeds: dict | None, canary: dict) -> tuple[float, float, bool]:
    """(kernel factor, framework factor, from yardsticks) taking point q's times to the box's speed at point pid:
    with `speeds` (analysis/yardstick.py), the yardsticks' readings at pid over q's where both points have them;
    else the canary's median ratio at pid over q's for both; else 1."""
    a, b = (speeds or {}).get(pid) or {}, (speeds or {}).get(q) or {}
    if all(x.get(k) for x in (a, b) for k in ("kernels", "dispatch")):
        return a["kernels"] / b["kernels"], a["dispatch"] / b["dispatch"], True
    c = canary[pid] / canary[q] if canary.get(pid) and canary.get(q) else 1.0
    return c, c, False


def leave_one_out(run, drift_scaled: bool = False, speeds: dict | None = None,
                  apart: set | None = None) -> dict | None:
    """apart: point ids also scored without (`without_partly_resident` per phase: the points the composition flags
    partly_resident, analysis/compose.py), beside the score over every point. drift_scaled: each other point's times scaled to the box's speed at the held-out point over its own, so
    that a box that moved between points is taken out: by the canary's median reading during each point
    (`canary_ratio`), or, given `speeds` (point_speeds'), by the yardsticks' (drift_factors); False: the kernels
    as measured."""
    loaded = load_compose(run.path)
    rows = run.ok[run.ok["execution"] == "eager"] if len(run.ok) else run.ok
    if loaded is None or rows.empty:
        return None
    compose, framework = loaded
    cal_passes = _passes(rows, compose, framework)
    points = rows.drop_duplicates("point_id")
    classes = point_classes(points)
    impl = {p["point_id"]: (p["attention"], p["cache"]) for _, p in points.iterrows()}
    canary = {p["point_id"]: None if pd.isna(p.get("canary_ratio")) else float(p["canary_ratio"])
              for _, p in points.iterrows()}
    dtype = points["dtype"].iloc[0]
    speeds = speeds if drift_scaled else None
    per_point, kernel_errs, skipped, statuses, ratios, sources = [], {}, [], [], [], set()
    for _, p in points.iterrows():
        pid = p["point_id"]
        others = [q for q in cal_passes if q != pid and impl[q] == impl[pid]]
        spec = row_spec(p)
        factors = {q: drift_factors(pid, q, speeds, canary) if drift_scaled else (1.0, 1.0, False) for q in others}
        sources |= {f[2] for f in factors.values()}
        cal = {"format": FORMAT, "dtype": dtype, "attention": p["attention"], "cache": p["cache"],
               "model": {"name": "run"}, "workloads": [],
               "passes": [x for q in others for x in _scaled(cal_passes[q], *factors[q][:2])]}
        if not others or not cal["passes"]:
            skipped.append(pid)
            continue
        cal = sized(cal, spec)
        index = build_index(cal)
        own = compose[compose["point_id"] == pid].set_index(["phase", "step", "op"])["kernel_s"].to_dict()
        g = rows[rows["point_id"] == pid]
        errs = {}
        for phase, steps in g.groupby("phase"):
            steps = steps.sort_values("step")
            stride = max(1, -(-len(steps) // STEPS_PER_POINT))
            for _, r in steps.iloc[::stride].iterrows():
                try:
                    pr = predict_pass(cal, spec, phase, int(r["batch"]), int(r["prompt_len"]), int(r["context_len"]),
                                      _mcl(r), index)
                except TheoryError:
                    continue
                errs.setdefault(phase, []).append(abs(r["measured_time_s"] / pr.time_s - 1)
                                                  if "measured_time_s" in r else abs(r["time_s"] / pr.time_s - 1))
                statuses.append(pr.status)
                ratios.append(max(o["extrapolation_ratio"] for o in pr.ops.values()))
                for op, o in pr.ops.items():
                    k = own.get((phase, int(r["step"]), op))
                    if k:
                        kernel_errs.setdefault((kernel_class(op), phase), []).append(abs(k / o["kernel_s"] - 1))
        for phase, es in errs.items():
            per_point.append({"point_id": pid, "phase": phase, "error": statistics.median(es),
                              "classes": classes[pid]})
    how = "measured" if not drift_scaled else YARDSTICKS_AS if sources == {True} else CANARY_AS if sources == {
        False} else "scaled by the yardsticks where both points have them, else by the canary's drift"
    out = {**_summarise(per_point, kernel_errs, skipped, statuses, ratios, apart or set()), "kernels_as": how}
    if speeds:
        out["basis"] += "; the yardsticks' per-round samples (kernel_rounds.csv)"
    return out


def _summarise(per_point, kernel_errs, skipped, statuses, ratios, apart: frozenset | set = frozenset()) -> dict:
    out = {"basis": "compose.csv paired kernel medians, framework.csv, measurements.csv (no per-round samples)",
           "points_not_predictable": skipped, "phases": {}, "by_class": {}, "kernels": {},
           "passes": len(statuses), "passes_extrapolated": sum(s == "extrapolated" for s in statuses),
           "median_extrapolation_ratio": float(statistics.median(ratios)) if ratios else None,
           "max_extrapolation_ratio": float(max(ratios)) if ratios else None,
           "points": [{**p, "classes": ",".join(p["classes"])} for p in sorted(per_point, key=lambda p: (
               p["phase"], p["point_id"]))]}
    for phase in ("decode", "prefill"):
        pp = [p for p in per_point if p["phase"] == phase]
        if not pp:
            continue
        out["phases"][phase] = _score([p["error"] for p in pp])
        rest = [p["error"] for p in pp if p["point_id"] not in apart]
        if len(rest) < len(pp):
            out["phases"][phase]["partly_resident_points"] = len(pp) - len(rest)
            out["phases"][phase]["without_partly_resident"] = _score(rest) if rest else {"points": 0}
        for cls in sorted({c for p in pp for c in p["classes"]}):
            out["by_class"].setdefault(cls, {})[phase] = _score([p["error"] for p in pp if cls in p["classes"]])
    for (cls, phase), es in sorted(kernel_errs.items()):
        out["kernels"].setdefault(cls, {})[phase] = {"median_abs_error": float(statistics.median(es)),
                                                     "p90_abs_error": _p90(es), "instances": len(es)}
    return out


def run_loo(run, apart: set | None = None) -> dict | None:
    """summary.json's `loo`: the kernels as measured, scaled by the canary's drift between points, and (runs that
    sampled yardsticks) scaled by the yardsticks' (`yardstick_scaled`); each also without the points in `apart`."""
    measured = leave_one_out(run, apart=apart)
    if measured is None:
        return None
    out = {"measured": measured, "drift_scaled": leave_one_out(run, True, apart=apart)}
    speeds = point_speeds(run.path)
    if speeds:
        out["yardstick_scaled"] = leave_one_out(run, True, speeds=speeds, apart=apart)
    return out


def loo_md(both: dict | None, names: dict | None = None) -> list[str]:
    """names: point_id → its shape name (analysis/names.py), so the prose names no hash."""
    if not both or "measured" not in both:
        return []
    return [line for key in ("measured", "drift_scaled", "yardstick_scaled") if both.get(key)
            for line in _one_md(both[key], "as measured" if key == "measured" else both[key].get(
                "kernels_as", CANARY_AS), names or {})]


def _one_md(loo: dict, how: str, names: dict) -> list[str]:
    pct = lambda x: f"{x:.1%}"
    lines = ["", f"## Leave-one-out: each point predicted from the other points' kernels ({how})", "",
             "Each eager point is predicted from the paired kernels and framework cost of the *other* points of this "
             "run with the same attention and cache (their prefill and first and last decode step, as `bench kernels` "
             "records), through theory's regime-aware interpolation (theory/calibration/regime.py) and its framework "
             "fit over depths (framework.py). Error = |measured / predicted − 1| per point (median over its steps); "
             f"rests on {loo['basis']}.", "",
             "| phase | class | points | median | p90 |", "|---|---|---|---|---|"]
    for phase, s in loo["phases"].items():
        lines.append(f"| {phase} | all | {s['points']} | {pct(s['median_abs_error'])} | {pct(s['p90_abs_error'])} |")
        for cls, by in loo["by_class"].items():
            if phase in by:
                b = by[phase]
                lines.append(f"| {phase} | {cls} | {b['points']} | {pct(b['median_abs_error'])} | "
                             f"{pct(b['p90_abs_error'])} |")
    ratio = lambda x: "n/a" if x is None else f"x{x:.2f}"
    lines += ["", f"{loo['passes_extrapolated']} of {loo['passes']} predicted passes extrapolated (median "
              f"extrapolation ratio {ratio(loo['median_extrapolation_ratio'])}, largest "
              f"{ratio(loo['max_extrapolation_ratio'])}); not predictable (no other point of their attention and "
              f"cache): {', '.join(names.get(p, p) for p in loo['points_not_predictable']) or 'none'}.", "",
              "Kernel level (the held-out point's own paired kernels against their interpolated times):", "",
              "| kernel class | phase | instances | median | p90 |", "|---|---|---|---|---|"]
    for cls, by in loo["kernels"].items():
        for phase, k in by.items():
            lines.append(f"| {cls} | {phase} | {k['instances']} | {pct(k['median_abs_error'])} | "
                         f"{pct(k['p90_abs_error'])} |")
    return lines
