"""Where every microsecond of a pass goes, per row: ideal roofline (theory, as run, measured ceilings, in the
point's own seconds: analysis/roofscale.py) →
kernels timed alone at these shapes (the kernel-efficiency gap) → composed (+ the framework's own cost) →
measured in the model (the residual: composition, cache and allocator effects).

roofline_s + kernel_gap_s + framework_gap_s + residual_s = measured_time_s, exactly (each gap is a difference).
roofline_low_s / roofline_high_s: what the start and the end ceilings imply; roofline_unscaled_s: the start
ceilings as measured (the kernel gap against it: kernel_gap_unscaled_s).
"""
from pathlib import Path

import pandas as pd

from analysis.compose import add_composed, composed_score, op_kernel_times
from analysis.join import SHAPE, no_overhead, row_workloads
from analysis.roofscale import add_roofline, factors, scaled
from theory.hfconfig import from_hf_config
from theory.roofline import predict

LEVELS = ("roofline_s", "kernel_gap_s", "framework_gap_s", "residual_s")
HEADLINE = ("median_abs_error", "p90_abs_error", "points")


def decompose(df: pd.DataFrame, run=None) -> pd.DataFrame:
    out = add_roofline(run, df)
    out["kernel_gap_s"] = out["kernels_s"] - out["roofline_s"]
    out["kernel_gap_unscaled_s"] = out["kernels_s"] - out["roofline_unscaled_s"]
    out["framework_gap_s"] = out["framework_s"]
    out["residual_s"] = out["measured_time_s"] - out["composed_time_s"]
    return out


def op_table(run, df: pd.DataFrame, compose: pd.DataFrame) -> pd.DataFrame:
    """Per (point, phase, step, op): roofline time (theory, as run, ceilings, in the point's seconds as the row's:
    analysis/roofscale.py) against instances × kernel time, for one representative row per point and phase (the
    middle decode step; the prefill)."""
    reps = []
    for (pid, phase), g in df[df["composed_time_s"].notna()].groupby(["point_id", "phase"], sort=False):
        reps.append(g.sort_values("step").iloc[len(g) // 2])
    if not reps:
        return pd.DataFrame()
    c = op_kernel_times(compose)
    rows = []
    ceilings = {}
    for r in reps:
        box = r.get("box") or None                        # the row's own box's ceilings (merged runs)
        if (box, r["dtype"]) not in ceilings:
            end = run.ceilings_end(r["dtype"], box)
            ceilings[(box, r["dtype"])] = (no_overhead(run.ceilings(r["dtype"], box)),
                                           None if end is None else no_overhead(end))
        hw, hw_end = ceilings[(box, r["dtype"])]
        spec = from_hf_config({k: int(r[k]) for k in SHAPE}, "row")
        f = factors(run, box, r.get("canary_ratio"))
        at_end = {} if hw_end is None else {o.op.name: o.time_s for o in predict(spec, hw_end, row_workloads(r)[0]).ops}
        roof = {o.op.name: (scaled(o.time_s, at_end.get(o.op.name), *f)[0], o.bound)
                for o in predict(spec, hw, row_workloads(r)[0]).ops}
        mine = c[(c["point_id"] == r["point_id"]) & (c["phase"] == r["phase"]) & (c["step"] == r["step"])]
        for _, k in mine.iterrows():
            t_roof, bound = roof.get(k["op"], (0.0, ""))
            rows.append({"point_id": r["point_id"], "phase": r["phase"], "step": int(r["step"]), "op": k["op"],
                         "count": int(k["count"]), "kernel_id": k["kernel_id"], "kernel_s": k["op_kernel_s"],
                         "roofline_s": t_roof, "bound": bound, "gap_s": k["op_kernel_s"] - t_roof,
                         "roofline_fraction": t_roof / k["op_kernel_s"] if k["op_kernel_s"] > 0 else float("nan")})
    return pd.DataFrame(rows)


def _shape_words(kernel_id: str) -> str:
    return kernel_id.split("|")[3] if kernel_id.count("|") >= 4 else ""


def largest_gaps(df: pd.DataFrame, ops: pd.DataFrame, pts: pd.DataFrame) -> list[dict]:
    """Per point and phase, in plain words: the largest of the kernel gap (its worst op), the framework and the
    residual, named only when it leads the next by more than the point's noise (analysis/classes.py); the
    residual only beyond the noise. Otherwise the point matches its composition within noise."""
    out = []
    if ops.empty or pts.empty:
        return out
    worst = ops.sort_values(["gap_s", "op"], ascending=[False, True]).groupby(["point_id", "phase"], sort=False).first()
    for _, p in pts.iterrows():
        key = (p["point_id"], p["phase"])
        noise = f"noise ±{p['noise_rel']:.0%}"
        measured_ms = p["measured_time_s"] * 1e3
        if p["residual_named"]:
            kind = "residual"
            text = (f"the model takes {p['residual_share']:+.0%} against its kernels and framework composed "
                    f"({p['residual_s'] * 1e3:+.3f} ms of {measured_ms:.3f} ms measured, {noise}; composition, cache "
                    f"and allocator effects)")
        elif not p["largest_named"]:
            kind = "none"
            text = (f"matches its composition within noise (measured/composed {p['ratio']:.2f}, {noise}); "
                    f"{_piece(p['largest'])} {p[p['largest'] + '_share']:.0%} and {_piece(p['runner_up'])} "
                    f"{p[p['runner_up'] + '_share']:.0%} of measured are not told apart")
        elif p["largest"] == "kernel_gap" and key in worst.index:
            kind, w = "kernel", worst.loc[key]
            text = (f"kernel gap {p['kernel_gap_share']:.0%} of measured, led by {w['op']} "
                    f"({_shape_words(w['kernel_id'])}, ×{w['count']}) at {w['roofline_fraction']:.0%} of its "
                    f"{w['bound']}-bound roofline ({w['kernel_s'] * 1e3:.3f} ms against {w['roofline_s'] * 1e3:.3f} ms "
                    f"on the middle row); matches its composition within noise ({noise})")
        else:
            kind = "framework"
            text = (f"the framework (modules, cache object, masks, Python) {p['framework_share']:.0%} of measured "
                    f"({p['framework_gap_s'] * 1e3:.3f} ms of {measured_ms:.3f} ms over the point's rows), ahead of the "
                    f"{_piece(p['runner_up'])} by more than the {noise}")
        out.append({"point_id": p["point_id"], "phase": p["phase"], "name": p["name"], "gap": kind,
                    "op": worst.loc[key]["op"] if kind == "kernel" else kind, "text": text})
    return out


def _piece(key: str) -> str:
    return {"kernel_gap": "kernel gap", "framework": "framework", "residual": "residual"}[key]


def add_explain(run, df: pd.DataFrame, summary: dict) -> pd.DataFrame:
    """Composed and decomposition columns; when a run has kernels, summary[phase]'s headline errors become the
    composed prediction's (scored on every point: nothing fitted), the τ fit's move under `tau_fit`."""
    df = add_composed(df, Path(run.path))
    if df.empty or not df["composed_time_s"].notna().any():
        return df
    df = decompose(df, run)
    for phase, s in summary.items():
        s["tau_fit"] = {k: s.get(k) for k in HEADLINE}
        comp = composed_score(df, phase)
        s["composed"] = comp
        s.update({k: comp[k] for k in HEADLINE})
        s["headline"] = "composed: Σ op instances × kernel timed alone + framework measured at tiny shapes"
    return df
