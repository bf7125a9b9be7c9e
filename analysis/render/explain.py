"""The report's *Where every microsecond goes*: how the composed prediction is built and scored, the median
shares, kernel efficiency by op and what kernels.csv holds (the columns themselves: analysis/decompose.py)."""
import math
from pathlib import Path

from analysis.compose import load_compose

def _pct(x) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.1%}"


def explain_section(a) -> list[str]:
    run, df, summary, ops = a.run, a.df, a.summary, a.ops
    loaded = load_compose(Path(run.path))
    if loaded is None or not a.composed:
        why = (a.extra.get("composition") or {}).get("absence") or "no kernel table in this run"
        text = why if why.startswith("no composed prediction") else f"{why}, so no composed prediction"
        return ["", "## Where every microsecond goes", "", f"{text[0].upper()}{text[1:]}."]
    lines = ["", "## Where every microsecond goes", "",
             "Composed = Σ over op instances of the op's kernel timed alone at the point's shapes (`kernels.csv`: "
             "sampled between the point's own repeats where `source` is `paired`; "
             "median and 95% interval, rotating copies of weights and KV cache unless what the model streams per pass "
             "fits half the effective last-level cache) + the framework's own cost, measured on the same model structure at tiny shapes "
             "(`framework.csv`). Nothing is fitted; every point is scored. Per row, in `joined.csv`: roofline_s + "
             "kernel_gap_s + framework_gap_s + residual_s = measured_time_s (roofline_s in the point's own seconds; "
             "roofline_unscaled_s: the start ceilings as measured).", "",
             "| phase | points | measured/composed − 1: median | p90 | median point's \\|residual\\| / measured "
             "| τ fit (held out): median | p90 |",
             "|---|---|---|---|---|---|---|"]
    for phase, s in summary.items():
        c, t = s.get("composed", {}), s.get("tau_fit", {})
        lines.append(f"| {phase} | {c.get('points')} | {_pct(c.get('median_abs_error'))} | "
                     f"{_pct(c.get('p90_abs_error'))} | {_pct(c.get('median_point_abs_residual_share'))} | "
                     f"{_pct(t.get('median_abs_error'))} | {_pct(t.get('p90_abs_error'))} |")
    reps = df[df["composed_time_s"].notna()]
    med = lambda col: float((reps[col] / reps["measured_time_s"]).median())
    lines += ["", f"Median share of measured time (all rows): roofline {med('roofline_s'):.0%}, kernel gap "
              f"{med('kernel_gap_s'):.0%}, framework {med('framework_gap_s'):.0%}, residual {med('residual_s'):+.0%}.",
              "", "Per point, with the noise rule, under *Causes per point*."]
    if not ops.empty:
        lines += ["", "Kernel efficiency by op (fraction of its roofline each op's kernel reaches; median over the "
                  "rows above):", "", "| phase | op | median fraction | min | max | rows |", "|---|---|---|---|---|---|"]
        for (phase, op), g in ops.groupby(["phase", "op"], sort=True):
            f = g["roofline_fraction"]
            lines.append(f"| {phase} | {op} | {f.median():.0%} | {f.min():.0%} | {f.max():.0%} | {len(g)} |")
    kpath = Path(run.path) / "kernels.csv"
    if kpath.exists():
        import pandas as pd
        from analysis.validate import read_side_csv
        k = read_side_csv(kpath)
        what = (f"{len(k)} kernel timings ({k['kernel_id'].nunique()} distinct kernels over "
                f"{k['point_id'].nunique()} points)" if "point_id" in k else f"{len(k)} distinct kernels")
        lines += ["", f"`kernels.csv`: {what}, {int((k['cache_state'] == 'dram').sum())} timed "
                  f"with rotated copies (DRAM), {int((k['cache_state'] == 'llc').sum())} warm; "
                  f"{int(k['stable'].astype(bool).sum())} reached a 95% interval within ±5% of the median; "
                  f"{int((k['source'] == 'cache').sum())} reused from this box's kernel cache."]
        if (k["source"] == "paired").any():          # bench.kernels.paired: sampled between the point's repeats
            lines[-1] += (f" {int((k['source'] == 'paired').sum())} were sampled in rounds between their point's "
                          f"repeats (one sample per repeat the point's statistics use), so kernels and model were "
                          f"timed in the same seconds.")
        checks = sorted(k["cache_check"].dropna().astype(str).unique()) if "cache_check" in k else []
        if checks:                                 # the cache is reused only if its sentinels, timed again, agree
            lines[-1] += " Kernel cache check (sentinels timed again): " + "; ".join(checks) + "."
        comp = loaded[0]
        if "kernels_wall_s" in comp:
            wall = comp.groupby("point_id")["kernels_wall_s"].first().sum()
            lines[-1] += f" Kernels and the framework's tiny-shape runs took {wall:.1f} s of this run's wall time."
    elif (a.extra.get("composition") or {}).get("kernels_csv_missing"):
        lines += ["", "`kernels.csv` is missing from the run directory, though run.json records that kernels were "
                  "asked for (deleted, or never assembled): the composed prediction above comes from compose.csv, "
                  "but the kernel timings behind it cannot be listed."]
    return lines
