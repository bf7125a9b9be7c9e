"""The first screen's content as data (summary.json `first_screen`; analysis/render/first_screen.py writes the
same as markdown): what ran, how fast the points a reader looks at first ran, how well the composition predicts,
and where the time goes per point class with the cause that survives the noise."""
import math

import pandas as pd

from analysis.names import point_name

FEATURED = 4                 # points in the first screen's speed table


def wall_parts_s(meta: dict) -> dict[str, float]:
    """Where the run's wall time went (run.json): the measuring phases in order, the report excluded."""
    rs = meta.get("repeat_summary", {})
    parts = dict(rs.get("wall_s", {}))
    if not parts:
        return {}
    return {"ceilings (start)": meta.get("ceilings_wall_s", 0.0), **parts,
            "re-measure noisy points": meta.get("remeasure_wall_s", 0.0),
            "ceilings (end)": meta.get("ceilings_end_wall_s", 0.0)}


def what_ran(run) -> dict:
    m = run.meta
    status = run.rows.groupby("point_id")["status"].first()
    wall = wall_parts_s(m)
    return {"run_id": m.get("run_id"), "device": m.get("device"), "device_name": m.get("device_name"),
            "threads": m.get("threads"), "torch": m.get("torch"), "transformers": m.get("transformers"),
            "sweep": m.get("sweep_name"), "points_planned": m.get("points"), "points_ok": int((status == "ok").sum()),
            "points_failed": int((status != "ok").sum()), "partial": bool(run.partial),
            "wall_s": round(sum(v or 0.0 for v in wall.values()), 1) if wall else None,
            "git_commit": str(m.get("git_commit"))[:10], "git_dirty": bool(m.get("git_dirty"))}


def _defaults(run) -> dict:
    import json
    path = run.path / "sweep.json"
    try:
        return json.loads(path.read_text()).get("defaults", {}) or {} if path.exists() else {}
    except (ValueError, AttributeError):
        return {}


def featured_points(points: pd.DataFrame, run) -> pd.DataFrame:
    """The points a reader looks at first: those naming a model (by name), else the sweep's base point (its
    `defaults`), the smallest and the largest model (decode roofline) and the fastest decode (tokens/s)."""
    if points.empty:
        return points
    p = points.assign(name=[point_name(r) for _, r in points.iterrows()]).sort_values("name", kind="stable")
    named = p[p["model"].astype(str) != ""] if "model" in p else p.iloc[0:0]
    if len(named):
        return named.head(FEATURED)
    d = _defaults(run)
    base = p
    for key in ("hidden_size", "num_hidden_layers", "batch", "prompt_len", "generated"):
        if key in d:
            base = base[base[key] == d[key]]
    base = base[(base["attention"] == "sdpa") & (base["cache"] == "dynamic")].head(1)
    roof = p["decode_predicted_time_s_ceilings"]
    rate = p["batch"] / p["decode_measured_time_s"]
    picks = [base, p.loc[[roof.idxmin()]], p.loc[[roof.idxmax()]], p.loc[[rate.idxmax()]]]
    out = pd.concat([x for x in picks if len(x)]).drop_duplicates("point_id")
    return out.head(FEATURED)


def speed_rows(points: pd.DataFrame, run) -> list[dict]:
    rows = []
    for _, p in featured_points(points, run).iterrows():
        ttft, tpot = p["prefill_measured_time_s"], p["decode_measured_time_s"]
        ok = lambda v: v is not None and not (isinstance(v, float) and math.isnan(v)) and v > 0
        rows.append({"name": point_name(p), "ttft_s": float(ttft) if ok(ttft) else None,
                     "prefill_tokens_per_s": float(p["batch"] * p["prompt_len"] / ttft) if ok(ttft) else None,
                     "tpot_s": float(tpot) if ok(tpot) else None,
                     "decode_tokens_per_s": float(p["batch"] / tpot) if ok(tpot) else None})
    return rows


def accuracy(summary: dict, extra: dict) -> dict:
    out = {}
    for phase in sorted(k for k, v in summary.items() if isinstance(v, dict) and "before_fit" in v):
        s = summary[phase]
        c = s.get("composed") or {}
        out[phase] = {"composed_median_abs_error": c.get("median_abs_error"),
                      "composed_p90_abs_error": c.get("p90_abs_error"), "points": c.get("points", s.get("points")),
                      "partly_resident_points": c.get("partly_resident_points", 0),
                      "without_partly_resident": c.get("without_partly_resident"),
                      "roofline_median_abs_error": s["before_fit"]["median_abs_error"]}
    return {"phases": out, "loo": extra.get("loo")}


def class_rows(classes: pd.DataFrame) -> list[dict]:
    keys = [f"{p}_share{s}" for p in ("roofline", "kernel_gap", "framework", "residual") for s in ("", "_low", "_high")]
    return [{"point_class": r["point_class"], "points": int(r["points"]), **{k: float(r[k]) for k in keys},
             "top_ops": list(r["top_ops"]), "cause": r["cause"], "cause_agree": int(r["cause_agree"]),
             "runner_up": r["runner_up"], "cause_clear": bool(r["cause_clear"]),
             "cause_majority": bool(r["cause_majority"]), "cause_sizes_mutual": bool(r["cause_sizes_mutual"]),
             "cause_points": {k: int(v) for k, v in r["cause_points"].items()},
             "cause_beyond_noise": int(r["cause_beyond_noise"]),
             "cause_interval_clear": bool(r["cause_interval_clear"])}
            for _, r in classes.iterrows()]


def per_point_counts(pts: pd.DataFrame, noise: dict) -> dict:
    if pts.empty:
        return {}
    return {"point_phases": int(len(pts)), "within_noise": int((~pts["residual_named"]).sum()),
            "residual_named": int(pts["residual_named"].sum()), "largest_named": int(pts["largest_named"].sum()),
            "repeat_rel": noise.get("repeat_rel"), "repeat_rel_by_phase": noise.get("by_phase", {})}


def first_screen(a) -> dict:
    return {"what_ran": what_ran(a.run), "speed": speed_rows(a.points, a.run),
            "accuracy": accuracy(a.summary, a.extra), "classes": class_rows(a.classes),
            "per_point": per_point_counts(a.point_shares, a.noise), "flags": flag_counts(a.flags),
            **composition_counts(a.extra.get("composition"))}


def composition_counts(comp: dict | None) -> dict:
    """The run's sentence for having no composed prediction (None where it has one) and how many points measured
    ok are not composed while kernels were asked for (analysis/uncomposed.py)."""
    comp = comp or {}
    n = len(comp.get("not_composed", [])) if comp.get("kernels_asked") else 0
    return {"kernel_absence": comp.get("absence"), "not_composed": n}


def flag_counts(flags: list[dict]) -> dict[str, int]:
    out: dict[str, int] = {}
    for f in flags:
        out[f["kind"]] = out.get(f["kind"], 0) + 1
    return dict(sorted(out.items()))
