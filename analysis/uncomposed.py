"""Why a point has no composed prediction, in words that tell the causes apart: kernels not asked for
(`--no-kernels`, run.json `kernels: false`), a family the kernel plan does not cover (bench/kernels/shapes.py plans
Llama-structured layers; theory/calibration/family.py holds the rule), or a run directory missing the files the
run wrote (compose.csv, framework.csv deleted or never assembled). summary.json `composition`; the report's
*Not composed* section and first screen read it."""
from pathlib import Path

import pandas as pd

from analysis.join import row_spec
from analysis.names import point_name
from theory.calibration.family import unplanned_reason

COMPOSE_FILES = ("compose.csv", "framework.csv")


def missing_files(run_dir: Path, names=COMPOSE_FILES) -> list[str]:
    return [n for n in names if not (run_dir / n).exists()]


def point_reason(row, asked, missing: list[str]) -> str:
    """The one reason a point with no composed prediction has none."""
    if asked is False:
        return "kernels were not asked for (`--no-kernels`)"
    spec = row_spec(row)
    why = unplanned_reason(spec)
    if why is not None:
        return (f"no kernel plan for its family ({why}): bench times Llama-structured layers only, so this "
                "point gets no composed prediction rather than one from Llama kernels")
    if asked is None:
        return "run.json does not record whether kernels were asked for, and the run has no composed rows for it"
    if missing:
        return (f"{', '.join(f'`{m}`' for m in missing)} missing from the run directory, though run.json records "
                "that kernels were asked for (deleted, or the run ended before they were assembled)")
    return "kernels were asked for, but compose.csv and framework.csv hold no rows for this point"


def composition(a) -> dict:
    """Per eager point measured ok without a composed prediction: its id, name and reason; and the run's one
    sentence for having none at all (None where some point is composed)."""
    asked = a.run.meta.get("kernels")
    missing = missing_files(a.path)
    df = a.df
    out = []
    if len(df):
        composed = df["composed_time_s"].notna() if "composed_time_s" in df else pd.Series(False, index=df.index)
        has = composed.groupby(df["point_id"]).any()
        for pid, r in df.groupby("point_id", sort=False).first().iterrows():
            if not has.get(pid, False):
                r = r.copy()
                r["point_id"] = pid
                out.append({"point_id": pid, "name": point_name(r), "reason": point_reason(r, asked, missing)})
    return {"kernels_asked": asked, "missing_files": missing if asked else [],
            "kernels_csv_missing": bool(asked) and not (a.path / "kernels.csv").exists() and a.composed,
            "not_composed": out, "absence": None if a.composed else absence(asked, missing, out)}


def absence(asked, missing: list[str], points: list[dict]) -> str:
    """Why the run has no composed prediction at all."""
    if asked is False:
        return "no kernel table in this run (`--no-kernels`)"
    if asked is None:
        return "no kernel table in this run (run.json does not record whether kernels were asked for)"
    if points and all(p["reason"].startswith("no kernel plan") for p in points):
        return ("no composed prediction: kernels were asked for, but no point's family has a kernel plan "
                "(reasons per point under *Not composed*)")
    if missing:
        return (f"no composed prediction: {', '.join(f'`{m}`' for m in missing)} missing from the run directory, "
                "though run.json records that kernels were asked for (deleted, or never assembled)")
    return "no composed prediction: kernels were asked for, but no point has composed rows (see *Not composed*)"


def composition_hook(a) -> dict:
    return {"composition": composition(a)}


def not_composed_md(comp: dict | None) -> list[str]:
    """The report's *Not composed*: every point the composed score leaves out, and why (kernels asked for)."""
    if not comp or not comp.get("kernels_asked") or not comp.get("not_composed"):
        return []
    lines = ["", "## Not composed", "",
             "Points measured ok that have no composed prediction, so every composed score above leaves them out:", ""]
    lines += [f"- {p['name']}: {p['reason']}" for p in comp["not_composed"]]
    return lines
