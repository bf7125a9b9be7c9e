"""The one-screen summary that opens report.md: what ran, the headline errors, the three largest gaps and their
causes, and what τ, k_mem and k_comp mean."""
import math

import pandas as pd

from analysis.render.fmt import is_missing, point_name

GLOSSARY = [
    "- **roofline**: max(FLOPs / matmul peak, bytes / streaming bandwidth) per op, both measured on this box.",
    "- **τ** (tau): a fixed cost per dispatched op (CPU dispatch or GPU launch), fitted by least squares on "
    "relative error; *+ τ* predicts roofline + n_dispatch × τ.",
    "- **k_mem**, **k_comp**: the calibrated fit time = k_mem·memory + k_comp·compute + n_dispatch·τ; 1/k is the "
    "fraction of the measured ceiling the model's real layers reach (k_mem 2 = half the streaming bandwidth).",
    "- **throughput** (tokens/s): batch × prompt tokens / prefill time, or batch × 1 token / decode step time.",
    "- **composed**: Σ over op instances of each op's kernel timed alone at the point's shapes + the framework's "
    "own cost measured at tiny shapes; nothing fitted, every point scored (see *Where every microsecond goes*).",
    "- Errors are |measured / predicted − 1|; the fits (τ, calibrated) predict each point from a fit that did not "
    "see it.",
]
CAUSES = {
    "overhead-bound": "per-op dispatch/launch cost: n_dispatch × τ exceeds the roofline",
    "memory-bound": "bandwidth: the layers stream bytes below the measured ceiling (see k_mem)",
    "compute-bound": "compute: the matmuls run below the measured peak (see k_comp)",
}


def _pct(x) -> str:
    return "n/a" if is_missing(x) else f"{x:.0%}"


def _ms(x) -> str:
    return "n/a" if is_missing(x) else f"{x * 1e3:.3f} ms"


def largest_gaps(points: pd.DataFrame, n: int = 3) -> list[dict]:
    gaps = []
    for _, p in points.iterrows():
        for phase in ("prefill", "decode"):
            m, r = p.get(f"{phase}_measured_time_s"), p.get(f"{phase}_predicted_time_s_ceilings")
            if is_missing(m) or is_missing(r) or m <= 0 or r <= 0:
                continue
            gaps.append({"name": point_name(p), "phase": phase, "measured_s": float(m), "roofline_s": float(r),
                         "fitted_s": p.get(f"{phase}_predicted_time_s_fitted"), "regime": p.get(f"{phase}_regime", "")})
    gaps.sort(key=lambda g: (-abs(math.log(g["measured_s"] / g["roofline_s"])), g["name"], g["phase"]))
    return gaps[:n]


def points_label(s: dict) -> str:
    """The run's points in this phase, and how many each score covers when that differs (a one-point run has no
    held-out fit; a point without kernels is not composed; a point in the cache is left out of the fits)."""
    run_n = s.get("points_in_run", s.get("points"))
    counts = {"composed": (s.get("composed") or {}).get("points"), "roofline": s["before_fit"].get("points"),
              "held-out fits": s.get("tau_fit", s).get("points")}
    scored = {k: v for k, v in counts.items() if v is not None}
    noun = "point" if run_n == 1 else "points"
    if all(v == run_n for v in scored.values()):
        return f"{run_n} {noun}"
    return f"{run_n} {noun} in the run; scored: " + ", ".join(f"{k} {v}" for k, v in scored.items())


def summary_md(run, points: pd.DataFrame, summary: dict, flags: list[dict]) -> list[str]:
    m = run.meta
    statuses = run.rows.groupby("point_id")["status"].first().value_counts().sort_index()
    lines = ["## Summary", "",
             f"- **What ran**: sweep `{m.get('sweep_name')}` on {m.get('device_name')} ({m.get('device')}, "
             f"{m.get('threads')} thread(s)); {run.rows['point_id'].nunique()} of {m.get('points')} points: "
             + ", ".join(f"{k} {v}" for k, v in statuses.items()) + "."]
    if not summary:
        lines += ["- **Nothing was measured**: no point finished with status ok; the reasons are under "
                  "*Not measured* below."]
    for phase in sorted(summary):
        s = summary[phase]
        c, t, k = s.get("calibrated", {}), s.get("tau_fit", s), s.get("composed")
        composed = (f"composed from kernels (nothing fitted) {_pct(k.get('median_abs_error'))} / "
                    f"{_pct(k.get('p90_abs_error'))}; ") if k else ""
        lines.append(f"- **{phase}** ({points_label(s)}), median / p90 error: {composed}roofline only "
                     f"{_pct(s['before_fit']['median_abs_error'])} / {_pct(s['before_fit']['p90_abs_error'])}; "
                     f"+ τ {_pct(t.get('median_abs_error'))} / {_pct(t.get('p90_abs_error'))}; "
                     f"calibrated {_pct(c.get('median_abs_error'))} / {_pct(c.get('p90_abs_error'))}.")
    gaps = largest_gaps(points) if len(points) else []
    if gaps:
        lines += ["", "The three largest gaps between measured and roofline:", ""]
        for g in gaps:
            lines.append(f"1. {g['name']}, {g['phase']}: measured {_ms(g['measured_s'])} vs roofline "
                         f"{_ms(g['roofline_s'])} ({g['measured_s'] / g['roofline_s']:.1f}×); + τ predicts "
                         f"{_ms(g['fitted_s'])}. Cause: {CAUSES.get(g['regime'], g['regime'] or 'unknown')}.")
    kinds = sorted({f["kind"] for f in flags})
    if kinds:
        lines += ["", "Flags raised (details below): " + ", ".join(kinds) + "."]
    return lines + ["", "What the terms mean:", ""] + GLOSSARY + [""]
