"""Where the time goes by point class, and which causes survive the run's noise.

A point class is phase × width band × bound: the width band compares the point's hidden size with the sweep's
base width (sweep.json `defaults`, else the median width), the bound is theory's (memory vs compute, as run) with
the run's measured ceilings, read at a reference ridge (reference_ridge_scale: the datasheet's, or this box's for a
CPU), so that both come from the shape: a point is in the same class in every run of a sweep on one device kind.

Per point and phase (all its rows summed): the measured decomposition's shares of measured time (roofline, kernel
gap, framework, residual; analysis/decompose.py) and measured/composed with its interval. Noise: the larger of the
point's own interval of measured/composed (its rows' 95% intervals of the median against the kernels' intervals)
and the run's repeat-to-repeat spread of measured/composed (per repeat: Σ steps' times / Σ composed; a robust
standard deviation, IQR / 1.349, over a point's repeats, median over points). A point's residual is named as a
cause only beyond that noise; its largest piece only when it leads the next by more than the noise.

The roofline is in the point's own seconds (analysis/roofscale.py), with a low and a high end where the run has
end ceilings: a point's roofline and kernel-gap shares carry that range (the kernel gap's the other way round:
kernels − the high roofline is its low end), and a class's interval runs from the 95% interval of the median of
its points' low ends to that of their high ends, so it holds both the spread over points and what the box's
speed allows. `*_unscaled_share`: against the start ceilings as measured.
"""
import numpy as np
import pandas as pd

from analysis.names import point_name
from bench.timing.stats import median_ci

PIECES = ("kernel_gap", "framework", "residual")          # the gaps beyond the roofline a cause can name
LEVEL_COLS = {"roofline": "roofline_s", "kernel_gap": "kernel_gap_s", "framework": "framework_gap_s",
              "residual": "residual_s"}
SHAPE = ["model", "hidden_size", "num_hidden_layers", "batch", "prompt_len", "generated", "attention", "cache"]
IQR_TO_SD = 1.349                                          # IQR of a normal distribution in standard deviations
ROOF_RANGE = ("roofline_low_s", "roofline_high_s", "roofline_unscaled_s")     # analysis/roofscale.py
RIDGE_COLS = ["device", "ridge_flops_per_byte", "datasheet_ridge_flops_per_byte"]      # analysis/join.py
# The ridge (peak FLOPs / DRAM bandwidth) a point's bound is read against where the device has no datasheet: the
# median of the nine committed default runs' measured fp32 ridges on this project's 2-core CPU box (4.04-5.87,
# 2026-11-23 to 2026-12-02), so that a class does not move with one run's ceilings. Another CPU's classes are then
# read against this box's ridge (the class name says memory- or compute-bound relative to it).
REFERENCE_RIDGE_FLOPS_PER_BYTE = {"cpu": 4.46}


def reference_ridge_scale(p: pd.DataFrame) -> pd.Series | float:
    """Per point: the reference ridge / the run's measured ridge, so that theory's memory time (against the run's
    ceilings) compared with its compute time reads the bound at the reference ridge: the datasheet's where the
    device has one, else REFERENCE_RIDGE_FLOPS_PER_BYTE's for its kind; 1 (the run's own ceilings) without either.
    Why: the ratio of the measured ceilings moves between runs of one sweep (20261202T111615Z's start ceilings had a
    ridge of 5.87 against 4.19 in the run before it), and four point × phase pairs near the ridge changed class."""
    if "ridge_flops_per_byte" not in p:
        return 1.0
    own = pd.to_numeric(p["ridge_flops_per_byte"], errors="coerce")
    sheet = pd.to_numeric(p["datasheet_ridge_flops_per_byte"], errors="coerce") \
        if "datasheet_ridge_flops_per_byte" in p else pd.Series(np.nan, index=p.index)
    kind = p["device"].map(REFERENCE_RIDGE_FLOPS_PER_BYTE) if "device" in p else pd.Series(np.nan, index=p.index)
    ref = sheet.fillna(kind)
    return (ref / own).where(own > 0).fillna(1.0)


def base_width(run, df: pd.DataFrame) -> int:
    defaults = (run.meta.get("sweep_defaults") or {}) if hasattr(run, "meta") else {}
    sweep = run.path / "sweep.json" if hasattr(run, "path") else None
    if not defaults and sweep is not None and sweep.exists():
        import json
        try:
            defaults = json.loads(sweep.read_text()).get("defaults", {}) or {}
        except (ValueError, AttributeError):
            defaults = {}
    if isinstance(defaults.get("hidden_size"), int):
        return defaults["hidden_size"]
    return int(np.median(df["hidden_size"].astype(int).unique())) if len(df) else 0


def noise_floor(run, df: pd.DataFrame) -> dict:
    """The run's repeat-to-repeat spread of measured/composed (relative, one repeat), per phase and overall."""
    s = run.samples
    if s is None or s.empty or "composed_time_s" not in df:
        return {"repeat_rel": 0.0, "by_phase": {}, "points": 0}
    s = s[s["repeat"] >= 0]
    m = s.merge(df[["point_id", "phase", "step", "composed_time_s"]], on=["point_id", "phase", "step"])
    g = m.groupby(["point_id", "phase", "repeat"]).agg(t=("time_s", "sum"), c=("composed_time_s", "sum"))
    ratio = (g["t"] / g["c"]).rename("ratio").reset_index()
    spread = ratio.groupby(["point_id", "phase"])["ratio"].agg(
        lambda x: (x.quantile(0.75) - x.quantile(0.25)) / IQR_TO_SD / x.median() if len(x) >= 3 else np.nan).dropna()
    if spread.empty:
        return {"repeat_rel": 0.0, "by_phase": {}, "points": 0}
    by_phase = {ph: float(v.median()) for ph, v in spread.groupby(level="phase")}
    return {"repeat_rel": float(spread.median()), "by_phase": by_phase, "points": int(spread.size),
            "definition": "robust sd (IQR/1.349) of one repeat's measured/composed over a point's repeats, "
                          "median over points"}


def point_class(r, base: int) -> str:
    d = int(r["hidden_size"])
    band = f"d<{base}" if d < base else f"d>{base}" if d > base else f"d={base}"
    return f"{r['phase']}, {band}, {r['bound']}-bound"


def point_table(df: pd.DataFrame, ops: pd.DataFrame, noise: dict, base: int) -> pd.DataFrame:
    d = df[df["composed_time_s"].notna()]
    if d.empty:
        return pd.DataFrame()
    agg = {c: (c, "sum") for c in ("measured_time_s", "composed_time_s", "composed_ci_low_s", "composed_ci_high_s",
                                   "predicted_memory_s", "predicted_compute_s", *LEVEL_COLS.values(), *ROOF_RANGE)
           if c in d}
    for c in ("time_ci_low_s", "time_ci_high_s"):
        if c in d:
            agg[c] = (c, "sum")
    shape = [c for c in SHAPE + RIDGE_COLS if c in d]
    p = d.groupby(["point_id", "phase"], sort=True).agg(**agg, **{c: (c, "first") for c in shape},
                                                       rows=("step", "size")).reset_index()
    p["name"] = [point_name(r) for _, r in p.iterrows()]
    p["bound"] = np.where(p["predicted_memory_s"] * reference_ridge_scale(p) >= p["predicted_compute_s"], "memory",
                          "compute")
    p["point_class"] = [point_class(r, base) for _, r in p.iterrows()]
    for piece, col in LEVEL_COLS.items():
        p[f"{piece}_share"] = p[col] / p["measured_time_s"]
        p[f"{piece}_share_low"] = p[f"{piece}_share_high"] = p[f"{piece}_share"]
    if all(c in p for c in ROOF_RANGE):
        low, high, unscaled = (p[c] / p["measured_time_s"] for c in ROOF_RANGE)
        p["roofline_share_low"], p["roofline_share_high"] = low, high
        p["kernel_gap_share_low"] = p["kernel_gap_share"] + p["roofline_share"] - high
        p["kernel_gap_share_high"] = p["kernel_gap_share"] + p["roofline_share"] - low
        p["roofline_unscaled_share"] = unscaled
        p["kernel_gap_unscaled_share"] = p["kernel_gap_share"] + p["roofline_share"] - unscaled
    p["ratio"] = p["measured_time_s"] / p["composed_time_s"]
    lo = p.get("time_ci_low_s", p["measured_time_s"]) / p["composed_ci_high_s"]
    hi = p.get("time_ci_high_s", p["measured_time_s"]) / p["composed_ci_low_s"]
    p["ratio_ci_low"], p["ratio_ci_high"] = lo, hi
    own = np.maximum(p["ratio"] - lo, hi - p["ratio"]) / p["ratio"]
    run_rel = p["phase"].map(noise.get("by_phase", {})).fillna(noise.get("repeat_rel", 0.0))
    p["noise_rel"] = np.maximum(own.fillna(0.0), run_rel)
    p["residual_named"] = p["residual_share"].abs() > p["noise_rel"]
    sizes = p[["kernel_gap_share", "framework_share"]].assign(residual_share=p["residual_share"].abs())
    order = np.argsort(-sizes.to_numpy(), axis=1, kind="stable")
    top = sizes.to_numpy()[np.arange(len(p)), order[:, 0]]
    second = sizes.to_numpy()[np.arange(len(p)), order[:, 1]]
    p["largest"] = [PIECES[i] for i in order[:, 0]]
    p["runner_up"] = [PIECES[i] for i in order[:, 1]]
    p["largest_named"] = (top - second > p["noise_rel"]) & ((p["largest"] != "residual") | p["residual_named"])
    p = p.merge(top_op(d, ops), on=["point_id", "phase"], how="left")
    return p


def top_op(df: pd.DataFrame, ops: pd.DataFrame) -> pd.DataFrame:
    """Per point and phase: the op with the largest kernel gap on the representative row, as a share of it."""
    if ops.empty:
        return pd.DataFrame(columns=["point_id", "phase", "top_op", "top_op_gap_share"])
    o = ops.merge(df[["point_id", "phase", "step", "measured_time_s"]], on=["point_id", "phase", "step"])
    o = o.assign(gap_share=o["gap_s"] / o["measured_time_s"]).sort_values(["gap_share", "op"], ascending=[False, True])
    t = o.groupby(["point_id", "phase"], sort=False).first().reset_index()
    return t[["point_id", "phase", "op", "gap_share"]].rename(columns={"op": "top_op", "gap_share": "top_op_gap_share"})


def _interval(values, lows=None, highs=None) -> tuple[float, float, float]:
    """The median of values, from the 95% interval of the median of the low ends to that of the high ends."""
    ci = median_ci(sorted(float(v) for v in values))
    low = ci.low_s if lows is None else median_ci(sorted(float(v) for v in lows)).low_s
    high = ci.high_s if highs is None else median_ci(sorted(float(v) for v in highs)).high_s
    return ci.median_s, min(low, ci.low_s), max(high, ci.high_s)


def class_ops(ops: pd.DataFrame, df: pd.DataFrame, members: pd.DataFrame, n: int = 3) -> list[dict]:
    """The ops with the largest kernel gap in a class: per op, its gap / measured on each point's representative
    row, median over the class's points (an op a point lacks counts as 0)."""
    if ops.empty:
        return []
    keys = members[["point_id", "phase"]]
    o = ops.merge(keys, on=["point_id", "phase"]).merge(
        df[["point_id", "phase", "step", "measured_time_s"]], on=["point_id", "phase", "step"])
    if o.empty:
        return []
    share = (o.assign(s=o["gap_s"] / o["measured_time_s"]).groupby(["op", "point_id"])["s"].sum()
             .unstack(fill_value=0.0).reindex(columns=keys["point_id"].unique(), fill_value=0.0))
    med = share.median(axis=1).sort_values(ascending=False, kind="stable")
    return [{"op": op, "gap_share": float(v)} for op, v in med.head(n).items() if v > 0]


def class_table(pts: pd.DataFrame, ops: pd.DataFrame, df: pd.DataFrame) -> pd.DataFrame:
    """Per class: the median share of each level over its points with the 95% interval of that median (order
    statistics; the range below six points; the roofline's and kernel gap's widened by the points' own ranges,
    as the module says), the cause (the piece largest at more than half of its points whose class median is told
    apart from the next piece's, else the two largest at most points together), how many of the class's points
    have it as their own largest and at how many that lead exceeds the point's noise, and whether its interval is
    clear of the runner-up's."""
    if pts.empty:
        return pd.DataFrame()
    rows = []
    for cls, g in pts.groupby("point_class", sort=True):
        rec = {"point_class": cls, "phase": g["phase"].iloc[0], "points": int(len(g)),
               "names": "; ".join(sorted(g["name"]))}
        for piece in LEVEL_COLS:
            rec[f"{piece}_share"], rec[f"{piece}_share_low"], rec[f"{piece}_share_high"] = _interval(
                g[f"{piece}_share"], g.get(f"{piece}_share_low"), g.get(f"{piece}_share_high"))
        for piece in ("roofline", "kernel_gap"):
            if f"{piece}_unscaled_share" in g:
                rec[f"{piece}_unscaled_share"] = float(g[f"{piece}_unscaled_share"].median())
        # the cause: the piece that is the largest at more than half of the class's points, unless its class median
        # and the next piece's lie each inside the other's interval; otherwise the two largest at most points, named
        # together in PIECES order (which of them leads is then the points' noise). Not a mere overlap of the
        # class's intervals: a class mixes shapes, so they overlap where 13 of 14 points agree. The mutual test was
        # added after two back-to-back pairs (20261202T041952Z / 042643Z, 110836Z / 111615Z) in which prefill at
        # d<512 was led by the kernel gap at 6 and 4 of 7 points in one run and by the framework at 5 of 7 in the
        # other, its two medians each inside the other's interval in all four runs (docs/report.md)
        led = g["largest"].value_counts()
        ranked = sorted(PIECES, key=lambda k: (-int(led.get(k, 0)), -abs(rec[f"{k}_share"]), PIECES.index(k)))
        rec["cause_majority"] = 2 * int(led.get(ranked[0], 0)) > len(g)
        rec["cause_sizes_mutual"] = _mutual(rec, ranked[0], ranked[1])
        rec["cause_clear"] = rec["cause_majority"] and not rec["cause_sizes_mutual"]
        named = [ranked[0]] if rec["cause_clear"] else sorted(ranked[:2], key=PIECES.index)
        rec["cause"] = " ≈ ".join(named)
        rest = sorted((k for k in PIECES if k not in named), key=lambda k: (-abs(rec[f"{k}_share"]), PIECES.index(k)))
        rec["runner_up"] = rest[0]                                     # the largest piece not named
        rec["cause_agree"] = int(g["largest"].isin(named).sum())
        rec["cause_points"] = {k: int(led.get(k, 0)) for k in named}    # points each named piece leads
        rec["cause_beyond_noise"] = int((g["largest"].isin(named) & g["largest_named"]).sum())
        rec["cause_interval_clear"] = not _overlap(rec, named[0], rest[0]) if rec["cause_clear"] else False
        rec["top_ops"] = class_ops(ops, df, g)
        rec["within_noise"] = int((~g["residual_named"]).sum())
        rows.append(rec)
    return pd.DataFrame(rows)


def _abs_interval(low: float, high: float) -> tuple[float, float]:
    if low <= 0 <= high:
        return 0.0, max(-low, high)
    return min(abs(low), abs(high)), max(abs(low), abs(high))


def _mutual(rec: dict, a: str, b: str) -> bool:
    """Does each piece's median size lie inside the other's interval (a residual counts by its size)? class_table
    asks it of the piece leading at most points and the one leading at the next most (ties by size), the two it
    would name together."""
    (a_lo, a_hi), (b_lo, b_hi) = (_abs_interval(rec[f"{k}_share_low"], rec[f"{k}_share_high"]) for k in (a, b))
    a_v, b_v = abs(rec[f"{a}_share"]), abs(rec[f"{b}_share"])
    return b_lo <= a_v <= b_hi and a_lo <= b_v <= a_hi


def _overlap(rec: dict, a: str, b: str) -> bool:
    """Do the intervals of two pieces' sizes overlap (a residual counts by its size, either sign)?"""
    (_, a_hi), (b_lo, b_hi) = (_abs_interval(rec[f"{k}_share_low"], rec[f"{k}_share_high"]) for k in (a, b))
    a_lo = _abs_interval(rec[f"{a}_share_low"], rec[f"{a}_share_high"])[0]
    return a_lo <= b_hi and b_lo <= a_hi
