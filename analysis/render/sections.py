"""report.md as a list of sections, one function each: (Analysis) → markdown lines. The report is the
concatenation of SECTIONS in order. A new section is one function here (or in its own module) and one entry in
SECTIONS; it reads what it needs from the Analysis (analysis/result.py) and returns [] when it has nothing."""
from pathlib import Path

from analysis.headline import first_screen
from analysis.kvalloc import kv_allocator_section
from analysis.loo import loo_md
from analysis.modes import modes_md
from analysis.names import names_by_id, point_name
from analysis.render.explain import explain_section
from analysis.render.first_screen import PIECE_WORDS, cause_words, first_screen_md
from analysis.render.noise import noise_md
from analysis.uncomposed import not_composed_md
from analysis.roofscale import SCALE_LINE
from analysis.render.tables import ceil_overhead_s, ceilings_md, fits_md, kv_md, points_md, profile_md

GLOSSARY = [
    "- **roofline**: max(FLOPs / matmul peak, bytes / streaming bandwidth) per op, both measured on this box.",
    "- **composed**: Σ over op instances of each op's kernel timed alone at the point's shapes + the framework's "
    "own cost measured at tiny shapes; nothing fitted, every point scored.",
    "- **kernel gap** = kernels timed alone − roofline; **framework** = the framework's own cost; **residual** = "
    "measured − composed. roofline + kernel gap + framework + residual = measured, per row.",
    "- **τ** (tau): a fixed cost per dispatched op, fitted; *+ τ* predicts roofline + n_dispatch × τ.",
    "- **k_mem**, **k_comp**: the calibrated fit time = k_mem·memory + k_comp·compute + n_dispatch·τ; 1/k is the "
    "fraction of the measured ceiling the model's real layers reach (k_mem 2 = half the streaming bandwidth).",
    "- **throughput** (tokens/s): batch × prompt tokens / prefill time, or batch × 1 token / decode step time.",
]


def not_composed_section(a) -> list[str]:
    return not_composed_md(a.extra.get("composition"))


def first_screen_section(a) -> list[str]:
    return first_screen_md(first_screen(a))


def partial_section(a) -> list[str]:
    if not a.run.partial:
        return []
    return [f"**Partial run**: {a.run.rows['point_id'].nunique()} of {a.run.meta.get('points')} points finished "
            f"(`python -m bench resume {a.run.path}` finishes it).", ""]


def class_section(a) -> list[str]:
    if a.classes.empty:
        return []
    n = a.noise
    lines = ["## Where the time goes, per class", "",
             "A class is phase × width against the sweep's base width × theory's bound (memory or compute, as run): "
             "from the shape alone (the bound read at a fixed ridge: the datasheet's, or for a CPU this project's box's, "
             "docs/report.md), so every run of a sweep puts a point in the same class. Shares are of measured "
             "time, each point's rows summed (the measured decomposition, not a fit); the interval is the 95% "
             "interval of the median over the class's points (order statistics; the range below six points). The "
             "cause is the piece beyond the roofline that is the largest at more than half of the class's points, unless "
             "its class median and the next piece's lie each inside the other's interval; where no piece is, or they "
             "do, the two largest at most points are named together (\"kernel gap ≈ framework\"): which of "
             "them leads is then the points' noise. Beside it, at how many points that lead exceeds the point's own "
             "noise.", "", f"The {SCALE_LINE}; the roofline's and kernel gap's intervals also hold "
             "what the start and the end ceilings imply (docs/report.md).",
             ""]
    for _, c in a.classes.iterrows():
        ops = ", ".join(f"{o['op']} {o['gap_share']:.0%}" for o in c["top_ops"]) or "none"
        lines.append(f"- **{c['point_class']}** ({c['points']} points): {cause_words(c['cause'])} "
                     f"{'leads' if c['cause_clear'] else '(not told apart) lead'} in "
                     f"{c['cause_agree']} of {c['points']} points ({c['cause_beyond_noise']} beyond noise); the "
                     f"kernel gap's largest ops (share of measured, "
                     f"median over points): {ops}; {c['within_noise']} of {c['points']} match their composition "
                     f"within noise. Points: {c['names']}.")
    lines += ["", f"Noise: the run's repeat-to-repeat spread of measured/composed is "
              + ", ".join(f"{ph} {v:.1%}" for ph, v in sorted(n.get("by_phase", {}).items()))
              + f" ({n.get('definition', '')}, {n.get('points', 0)} point × phase pairs)."]
    return lines


def point_causes_section(a) -> list[str]:
    if not a.gaps:
        return []
    named = [g for g in a.gaps if g["gap"] != "none"]
    quiet = [g for g in a.gaps if g["gap"] == "none"]
    lines = ["", "## Causes per point", "",
             "Largest gap per point (each point's rows summed; the op named on its middle decode step, or the "
             "prefill). A piece is named only when it leads the next by more than the point's noise (the larger of "
             "its own interval of measured/composed and the run's repeat-to-repeat spread); a residual only when it "
             "exceeds that noise. The rest match their composition within noise.", ""]
    lines += [f"- {g['name']} {g['phase']}: {g['text']}" for g in sorted(named, key=lambda g: (g["phase"], g["name"]))]
    if quiet:
        lines += ["", f"Within noise ({len(quiet)} of {len(a.gaps)}): "
                  + "; ".join(f"{g['name']} {g['phase']}" for g in sorted(quiet, key=lambda g: (g["phase"], g["name"]))) + "."]
    return lines


def explain_md_section(a) -> list[str]:
    return explain_section(a)


def fits_section(a) -> list[str]:
    if not a.summary:
        return []
    return ["", "## How far from the arithmetic: the fits (τ and calibrated)", ""] + fits_md(a.summary) + [
        "", "What the terms mean (the reading guide: docs/report.md):", ""] + GLOSSARY


def ceilings_section(a) -> list[str]:
    return ["", "## Measured ceilings", ""] + ceilings_md(a.run)


def boxes_section(a) -> list[str]:
    """Which box measured which point (a merge of shards, bench/run/merge.py; a Ray run, bench/launch/ray.py)."""
    boxes = a.run.meta.get("boxes") or {}
    if not boxes:
        return []
    rows = a.run.rows.drop_duplicates("point_id")
    lines = ["", "## Which box measured which point", "",
             "Each point is set against the ceilings of the box that measured it (run.json `boxes`); a box without "
             "ceilings of its own is set against the run's (the first box's).", "",
             "| box | host | device | shard | ceilings: matmul peak (GFLOP/s), streaming read (GB/s) | points |",
             "|---|---|---|---|---|---|"]
    for b, info in boxes.items():
        mine = rows[rows["box"] == b]
        ceil = "; ".join(f"{dt} {c['peak_flops_per_s'][dt] / 1e9:.1f}, {c['memory_bandwidth_bytes_per_s'] / 1e9:.1f}"
                         for dt, c in (info.get("ceilings") or {}).items()) or "the run's"
        shard = "" if info.get("shard") is None else f"{info['shard']}/{info.get('shard_count')}"
        lines.append(f"| {b} | {info.get('host') or ''} | {info.get('device_name') or info.get('device') or ''} | "
                     f"{shard} | {ceil} | {len(mine)}: {', '.join(point_name(r) for _, r in mine.iterrows())} |")
    unboxed = rows[~rows["box"].isin(list(boxes))]
    if len(unboxed):
        lines += ["", f"No box recorded ({len(unboxed)}): " + ", ".join(point_name(r) for _, r in unboxed.iterrows())]
    return lines


def noise_section(a) -> list[str]:
    return noise_md(a.run, a.df)


def flags_section(a) -> list[str]:
    return ["", "## Why: flags", ""] + ([f"- **{f['kind']}**: {f['message']}" for f in a.flags] or ["- none"])


def kv_section(a) -> list[str]:
    return kv_md(a.kv, names_by_id(a.df), a.run.meta.get("device", "cpu"))


def modes_section(a) -> list[str]:
    return modes_md(a.modes, a.summary.get("decode", {}).get("tau_s") or 0.0, ceil_overhead_s(a.run))


def profile_section(a) -> list[str]:
    return profile_md(a.shares, a.flops, names_by_id(a.df)) if len(a.df) else []


def points_section(a) -> list[str]:
    return ["", "## Points", "", "Time to first token (TTFT) is the prefill; time per output token (TPOT) the mean "
            "decode step. Predictions are theory's roofline \"as run\" (the cache, attention and logits choices "
            "bench recorded) under this box's measured ceilings; *fitted* adds n_dispatch × τ (*How far from the arithmetic*). "
            "Throughput: prefill tokens/s = batch × prompt tokens / prefill time; decode tokens/s = batch × 1 token "
            "/ mean decode step time (both measured medians).", ""] + (
        points_md(a.points) if len(a.points) else ["no finished point"])


def not_measured_section(a) -> list[str]:
    skipped = a.run.rows[a.run.rows["status"] != "ok"].drop_duplicates("point_id")
    if skipped.empty:
        return []
    return ["", "## Not measured", ""] + [f"- {point_name(r)}: {r['status']} ({r['message']})"
                                         for _, r in skipped.iterrows()]


def figures_section(a) -> list[str]:
    if not a.figures:
        return []
    run_id = a.run.meta.get("run_id")
    return ["", "## Figures", ""] + [f"### {k}\n\n![{k}]({Path(v).relative_to(a.path)})\n\n*{k}; run {run_id}.*\n"
                                     for k, v in a.figures.items()]


def files_section(a) -> list[str]:
    return ["", "Files: `measurements.csv` (one row per point × phase × step), `samples.csv` (every timed sample, "
            "repeat −1 = cold), `joined.csv` (each row with its predictions, ratios and decomposition; the point "
            "hash `point_id` is its key), `summary.json` (the first screen under `first_screen`), `run.json`."]


def kv_allocator_md_section(a) -> list[str]:
    """The CUDA caching allocator replayed over each point's recorded allocation trace (analysis/kvalloc.py)."""
    return kv_allocator_section(a.path, a.run.rows, names_by_id(a.run.rows))


def loo_section(a) -> list[str]:
    return loo_md(a.extra.get("loo"), names_by_id(a.df))


SECTIONS = [first_screen_section, partial_section, class_section, point_causes_section, explain_md_section,
            not_composed_section,
            loo_section, fits_section, ceilings_section, boxes_section, noise_section, flags_section, kv_section,
            kv_allocator_md_section, modes_section, profile_section, points_section, not_measured_section,
            figures_section, files_section]


def render(a) -> list[str]:
    lines: list[str] = []
    for section in SECTIONS:
        lines += section(a)
    return lines


__all__ = ["SECTIONS", "render", "PIECE_WORDS"]
