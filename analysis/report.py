"""report.md, joined.csv and summary.json for one run, rebuilt from the run directory alone: analyse
(analysis/result.py) → figures (analysis/render/figures.py) → sections (analysis/render/sections.py)."""
from dataclasses import replace
from pathlib import Path

from analysis.headline import first_screen
from analysis.modes import modes_accuracy
from analysis.render.figures import make_figures
from analysis.render.first_screen import first_screen_md
from analysis.render.fmt import csv_text, json_text, no_negative_zero
from analysis.render.sections import render
from analysis.result import Analysis, analyse


def summary_obj(a: Analysis) -> dict:
    flags = a.flags
    out = {phase: {**s, "flags": [f for f in flags if f.get("phase", phase) == phase]}
           for phase, s in a.summary.items()}
    out["run_id"] = a.run.meta.get("run_id")
    out["partial"] = a.run.partial
    out["flags"] = flags
    fs = first_screen(a)
    out["first_screen"] = {**fs, "markdown": no_negative_zero("\n".join(first_screen_md(fs)))}
    if len(a.modes):
        out["modes"] = a.modes.to_dict("records")
        out["modes_accuracy"] = modes_accuracy(a.modes)     # composed per mode vs its eager twins
    out.update(a.extra)
    return out


def write_report(run_dir) -> Path:
    run_dir = Path(run_dir)
    if (run_dir / "comms_fit.json").exists():
        from analysis.comms import comms_report
        return comms_report(run_dir)
    a = analyse(run_dir)
    (run_dir / "joined.csv").write_text(csv_text(a.df))
    if len(a.modes):
        (run_dir / "modes.csv").write_text(csv_text(a.modes))
    (run_dir / "summary.json").write_text(json_text(summary_obj(a)))
    a = replace(a, figures=make_figures(a, run_dir / "figures"))
    out = run_dir / "report.md"
    out.write_text(no_negative_zero("\n".join(render(a)) + "\n"))
    return out
