"""Every figure of a report, in the order the report shows them: title (with its unit) → path. Each is
rebuilt from the run directory alone; titles name the run in the figure itself."""
from pathlib import Path

from analysis.breakdown import op_points
from analysis.modes import modes_figure
from analysis.render.class_plots import class_bars, composed_vs_context, composed_vs_width
from analysis.render.decompose_plots import decomposition_figures
from analysis.render.plots import all_figures


def make_figures(a, out_dir: Path) -> dict[str, str]:
    out_dir.mkdir(exist_ok=True)
    for old in sorted(out_dir.glob("*.png")):          # a rebuild leaves no figure of an earlier layout behind
        old.unlink()
    run_id = str(a.run.meta.get("run_id"))
    figs: dict[str, str] = {}
    if a.composed and not a.classes.empty:
        first = {"where the time goes per point class (share of measured time)": class_bars(
                     a.classes, run_id, out_dir / "classes.png"),
                 "measured vs composed vs roofline over width (ms)": composed_vs_width(
                     a.point_shares, run_id, out_dir / "composed_vs_width.png"),
                 "measured vs composed vs roofline over context (decode step, ms)": composed_vs_context(
                     a.df, run_id, out_dir / "composed_vs_context.png")}
        figs.update({k: v for k, v in first.items() if v})
    if len(a.df):
        ops = op_points(a.run, a.df)
        figs.update(all_figures(a.df, a.points, a.run, out_dir, a.shares, ops))
    if modes_figure(a.modes, out_dir / "modes_vs_width.png"):
        figs["decode step vs width per execution mode (ms)"] = str(out_dir / "modes_vs_width.png")
    if a.composed:
        figs.update(decomposition_figures(a.df, a.point_shares, run_id, out_dir))
    return figs
