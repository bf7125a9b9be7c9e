"""One run analysed: the typed result every report section reads (instead of a tuple), built from the run
directory alone. `analyse` joins, fits, composes, decomposes, flags and classifies; it writes nothing."""
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from analysis.breakdown import breakdown_table, flop_check
from analysis.classes import base_width, class_table, noise_floor, point_table
from analysis.decompose import add_explain, largest_gaps, op_table
from analysis.compose import load_compose, partly_resident
from analysis.fit import add_cached_reads, fit_and_score, last_cache_bytes
from analysis.flags import all_flags, per_point, share_flags
from analysis.join import join
from analysis.load import Run, load_run
from analysis.modes import modes_table
from analysis.names import names_by_id
from analysis.loo import run_loo
from analysis.uncomposed import composition_hook

EMPTY = pd.DataFrame()


@dataclass(frozen=True)
class Analysis:
    run: Run
    df: pd.DataFrame = field(default_factory=pd.DataFrame)         # eager rows, joined with every prediction
    points: pd.DataFrame = field(default_factory=pd.DataFrame)     # one row per point: TTFT, TPOT, predictions
    summary: dict = field(default_factory=dict)                    # per phase: the fits' and the composed errors
    flags: list = field(default_factory=list)
    kv: pd.DataFrame = field(default_factory=pd.DataFrame)         # KV bytes per token
    shares: pd.DataFrame = field(default_factory=pd.DataFrame)     # profiler shares (attention / MLP / other)
    flops: pd.DataFrame = field(default_factory=pd.DataFrame)      # FlopCounterMode / theory
    modes: pd.DataFrame = field(default_factory=pd.DataFrame)      # execution modes beside their eager twins
    ops: pd.DataFrame = field(default_factory=pd.DataFrame)        # per point × op: kernel vs its roofline
    gaps: list = field(default_factory=list)                       # per point: its largest gap, noise-judged
    point_shares: pd.DataFrame = field(default_factory=pd.DataFrame)   # per point: shares of measured, verdict
    classes: pd.DataFrame = field(default_factory=pd.DataFrame)    # per point class: shares with intervals, cause
    noise: dict = field(default_factory=dict)                      # the run's noise floor (analysis.classes)
    extra: dict = field(default_factory=dict)                      # keys other analyses add to summary.json
    figures: dict = field(default_factory=dict)                    # title → path, filled by the report

    @property
    def path(self) -> Path:
        return Path(self.run.path)

    @property
    def composed(self) -> bool:
        return "composed_time_s" in self.df and self.df["composed_time_s"].notna().any()


# Summary hooks: (Analysis) → dict merged into summary.json's top level and readable by sections as a.extra,
# e.g. a leave-one-out score under "loo". A new one is one function and one entry here.
def loo_hook(a) -> dict:
    """The never-built figure: each eager point predicted from the other points' kernels (analysis/loo.py)."""
    if not len(a.df):
        return {"loo": None}
    apart = set(partly_resident(a.df[a.df["composed_time_s"].notna()])["point_id"]) if a.composed else set()
    return {"loo": run_loo(a.run, apart)}


SUMMARY_HOOKS: list = [loo_hook, composition_hook]


def analyse(run_dir: Path) -> Analysis:
    run = load_run(run_dir)
    if run.ok.empty:                                  # only skipped, oom or error points: report what was tried
        return Analysis(run)
    joined_all = join(run)
    joined = joined_all[joined_all["execution"] == "eager"]       # τ and the flags: eager points (modes below)
    ceil = next(iter(run.meta.get("ceilings", {}).values()), {})
    df, summary = fit_and_score(joined, last_cache_bytes(run.meta))
    df = add_cached_reads(df, run.meta)              # which points could keep weights cached between passes
    modes = modes_table(joined_all, run.samples, summary.get("decode", {}).get("tau_s") or 0.0,
                        ceil.get("launch_overhead_s", 0.0), run)
    df = add_explain(run, df, summary)               # composed prediction: the headline errors when measured
    points = per_point(df) if len(df) else EMPTY
    flags, kv = all_flags(df, points, run.meta.get("device", "cpu"), run.samples) if len(df) else ([], EMPTY)
    shares = breakdown_table(run, df) if len(df) else EMPTY
    flops = flop_check(run, df) if len(df) else EMPTY
    flags += share_flags(shares, names_by_id(df))
    a = Analysis(run, df, points, summary, flags, kv, shares, flops, modes)
    loaded = load_compose(Path(run.path))
    if a.composed and loaded is not None:
        noise = noise_floor(run, df)
        ops = op_table(run, df, loaded[0])
        pts = point_table(df, ops, noise, base_width(run, df))
        a = replace(a, ops=ops, noise=noise, point_shares=pts, classes=class_table(pts, ops, df),
                    gaps=largest_gaps(df, ops, pts))
    extra = {}
    for hook in SUMMARY_HOOKS:
        extra.update(hook(a))
    return replace(a, extra=extra)
