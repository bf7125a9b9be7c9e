"""The report's "How well measured" section: repeats against the target, the interference canary and what its
drift does to the predictions, the ceilings' intervals and drift, and where the run's wall time went."""
import numpy as np
import pandas as pd

from analysis.headline import wall_parts_s
from analysis.names import names_by_id
from bench.timing.stats import SLOW_REL, TARGET_REL


def drift_errors(df: pd.DataFrame) -> dict[str, tuple[float, float]]:
    """Per phase: median |measured/predicted − 1| with the start-of-run ceilings, and with them scaled by each
    point's canary drift (its canary median / the run's baseline: a box 10% slower gets 10% slower ceilings)."""
    out = {}
    if "predicted_time_s_ceilings_drift" not in df.columns:
        return out
    for phase, g in df.groupby("phase"):
        plain = (g["measured_time_s"] / g["predicted_time_s_ceilings"] - 1).abs().median()
        scaled = (g["measured_time_s"] / g["predicted_time_s_ceilings_drift"] - 1).abs().median()
        out[phase] = (float(plain), float(scaled))
    return out


def noise_md(run, df: pd.DataFrame) -> list[str]:
    m = run.meta
    names = names_by_id(run.rows)
    if "canary_baseline_s" not in m:
        return []                                   # a run from before adaptive repeats
    ok = run.ok
    met = ok["time_ci_met"].fillna(0).astype(int) if "time_ci_met" in ok else pd.Series(dtype=int)
    lines = ["", "## How well measured", "",
             f"Repeats: whole trajectories on a fresh cache, at least {m.get('min_repeats')} and at most "
             f"{m.get('max_repeats')} per point, until every row's 95% interval of the median (order statistics) is "
             f"within ±{TARGET_REL:.0%}, or the point's {m.get('max_point_s')} s budget is spent. "
             f"{int(met.sum())} of {len(ok)} rows met the target; repeats per point "
             f"{int(ok['repeats'].min()) if len(ok) else 0}-{int(ok['repeats'].max()) if len(ok) else 0}."]
    rs = m.get("repeat_summary", {})
    series = rs.get("canary_series", [])
    base = m["canary_baseline_s"]
    slow_rel = m.get("canary_slow_rel", SLOW_REL)          # runs before the threshold followed the canary: 5%
    if series:
        ratios = np.array([c["time_s"] for c in series]) / base
        lines += ["", f"Interference canary (a fixed matmul and copy, timed before each point, between repeats and "
                      f"after): baseline {base * 1e3:.2f} ms at the start of the run; {len(ratios)} readings at "
                      f"{ratios.min():.2f}x-{ratios.max():.2f}x it (median {np.median(ratios):.2f}x), "
                      f"{(ratios > 1 + slow_rel).mean():.0%} of them >{slow_rel:.0%} slow (the threshold: "
                      f"{SLOW_REL:.0%} or the canary's own scatter at the start, whichever is larger). Repeats next to a slow "
                      f"reading were measured again; points that never got a quiet window: "
                      f"{', '.join(names.get(p, p) for p in rs.get('points_interference', [])) or 'none'}. The series is in run.json."]
    errs = drift_errors(df)
    if errs:
        lines += ["", "Predictions with the ceilings scaled by each point's canary drift (median |measured/predicted − 1|): "
                  + "; ".join(f"{ph} {a:.1%} unscaled, {b:.1%} scaled" for ph, (a, b) in errs.items())
                  + ". The tables above use the start-of-run ceilings unscaled."]
    lines += _ceilings_spread_md(m)
    wall = wall_parts_s(m)
    if wall:
        total = sum(v or 0.0 for v in wall.values())
        lines += ["", f"Wall time ({total:.0f} s measured, the report excluded): "
                  + ", ".join(f"{k.replace('_s', '')} {v:.1f} s" for k, v in wall.items()) + "."]
    rem = m.get("remeasured") or []
    if rem:
        lines += ["", "Re-measured at the end (mean interval width / median, first → second, kept): "
                  + "; ".join(f"{names.get(r['point_id'], r['point_id'])} {r['first_mean_rel_width']:.1%} → {r['second_mean_rel_width']:.1%}, "
                              f"{r['kept']}" for r in rem) + ". Both sets are in points/ (`*.other.csv`)."]
    return lines


def _ceilings_spread_md(m: dict) -> list[str]:
    lines = []
    for dt, det in m.get("ceilings_detail", {}).items():
        spread = det.get("spread")
        if not spread:
            continue
        drift = m.get("ceilings_drift", {}).get(dt, {})
        lines += ["", f"Ceilings ({dt}), median and 95% interval, and end-of-run / start-of-run:", "",
                  "| figure | unit | median | 95% interval | samples | end / start |", "|---|---|---|---|---|---|"]
        for name, s in spread.items():
            scale, unit = (1e6, "µs") if s["unit"] == "s" else (1e-9, "G" + s["unit"].replace("_per_s", "/s"))
            d = drift.get(name)
            lines.append(f"| {name} | {unit} | {s['median'] * scale:.3g} | {s['ci_low'] * scale:.3g}-"
                         f"{s['ci_high'] * scale:.3g} | {s['samples']} | {'' if d is None else f'{d:.3f}'} |")
    return lines
