"""The report's first screen (at most FIRST_SCREEN_LINES lines of markdown), written from summary.json's
`first_screen` so the two say the same: what ran, how fast, how well predicted, where the time goes, why."""
from analysis.render.fmt import is_missing

FIRST_SCREEN_LINES = 40
PIECE_WORDS = {"kernel_gap": "kernel gap", "framework": "framework", "residual": "residual"}


def _pct(x, sign: bool = False) -> str:
    return "n/a" if is_missing(x) else (f"{x:+.0%}" if sign else f"{x:.0%}")


def _ms(x) -> str:
    return "" if is_missing(x) else f"{x * 1e3:.1f}"


def _rate(x) -> str:
    return "" if is_missing(x) else f"{x:,.0f}" if x >= 100 else f"{x:.1f}"


def _share(c: dict, piece: str) -> str:
    sign = piece == "residual"
    return (f"{_pct(c[f'{piece}_share'], sign)} [{_pct(c[f'{piece}_share_low'], sign)}, "
            f"{_pct(c[f'{piece}_share_high'], sign)}]")


def cause_words(cause: str) -> str:
    return " ≈ ".join(PIECE_WORDS.get(p, p) for p in cause.split(" ≈ "))


def cause_cell(c: dict) -> str:
    beyond = c.get("cause_beyond_noise")
    noise = "" if beyond is None else f", beyond noise at {beyond}"
    if c["cause_clear"]:
        return f"{cause_words(c['cause'])} (largest at {c['cause_agree']} of {c['points']} points{noise})"
    each = " and ".join(str(v) for v in (c.get("cause_points") or {}).values())
    if c.get("cause_majority"):
        return (f"{cause_words(c['cause'])}, not told apart: largest at {each} of the {c['points']} points, their "
                f"class medians each inside the other's interval{noise}")
    return (f"{cause_words(c['cause'])}, not told apart: neither is largest at more than half of the "
            f"{c['points']} points ({each or c['cause_agree']}{noise})")


def _loo_phases(phases: dict) -> str:
    return "; ".join(f"{ph} {_pct(v.get('median_abs_error'))} / {_pct(v.get('p90_abs_error'))}"
                     + (f" ({v['points']} points{_loo_apart(v)})" if v.get("points") is not None else "")
                     for ph, v in sorted(phases.items()) if isinstance(v, dict))


def _loo_apart(v: dict) -> str:
    """A leave-one-out phase's figure without its partly-resident points (analysis/loo.py), where it has them."""
    n, rest = v.get("partly_resident_points"), v.get("without_partly_resident")
    if not n or not rest:
        return ""
    if not rest.get("points"):
        return f"; all {n} partly resident"
    return f"; without the {n} partly resident: {_pct(rest['median_abs_error'])} / {_pct(rest['p90_abs_error'])}"


def _loo_text(loo) -> str:
    """summary.json `loo` (analysis/loo.py): {"measured": {"phases": {phase: score}}, "drift_scaled": ...}; an older
    or simpler form {phase: score} or one score is read too."""
    if not loo:
        return "leave-one-out: not in this run"
    if "measured" in loo:
        text = "leave-one-out (each point from the other points' kernels): " + _loo_phases(loo["measured"]["phases"])
        scaled = (loo.get("drift_scaled") or {}).get("phases")
        return text + (f"; with the box's measured drift between points taken out: {_loo_phases(scaled)}"
                       if scaled else "")
    if "median_abs_error" in loo:
        loo = {"all": loo}
    return "leave-one-out: " + (_loo_phases(loo) or str(loo))


def _not_composed_text(fs: dict) -> str:
    """Points a composed score leaves out where some are composed: counted here, named under *Not composed*."""
    n = fs.get("not_composed") or 0
    return f" ({n} point(s) measured ok not composed: *Not composed* says why)" if n and not fs.get("kernel_absence") else ""


def _partly_text(v: dict) -> str:
    """The points that could stay cached between passes but were timed from DRAM (flag partly_resident), and the
    figure without them."""
    n, rest = v.get("partly_resident_points") or 0, v.get("without_partly_resident")
    if not n or not rest:
        return ""
    were, them = ("was", "it") if n == 1 else ("were", "them")
    if not rest.get("points"):
        who = "the 1 point" if n == 1 else f"all {n}"
        return f"; {who} could stay cached between passes but {were} timed from DRAM, flag partly_resident"
    return (f"; {n} of them could stay cached between passes but {were} timed from DRAM, flag partly_resident: "
            f"without {them} {_pct(rest['median_abs_error'])} / {_pct(rest['p90_abs_error'])}")


def first_screen_md(fs: dict) -> list[str]:
    w = fs["what_ran"]
    failed = f", {w['points_failed']} failed" if w["points_failed"] else ", none failed"
    wall = f"; {w['wall_s']:.0f} s of measuring" if w.get("wall_s") else ""
    lines = [f"# Run {w['run_id']}", "",
             f"**What ran**: sweep `{w['sweep']}`, {w['points_ok']} of {w['points_planned']} points ok{failed}"
             f"{' (partial run)' if w['partial'] else ''}, on {w['device_name']} ({w['device']}, {w['threads']} "
             f"thread(s)); torch {w['torch']}, transformers {w['transformers']}{wall}; commit {w['git_commit']}"
             f"{' (dirty)' if w['git_dirty'] else ''}.", ""]
    if not fs["speed"]:
        return lines + ["**Nothing was measured**: no point finished with status ok; the reasons are under "
                        "*Not measured* below.", ""]
    lines += ["**How fast** (measured medians; TTFT = prefill, TPOT = mean decode step):", "",
              "| point | TTFT (ms) | prefill tokens/s | TPOT (ms) | decode tokens/s |", "|---|---|---|---|---|"]
    lines += [f"| {s['name']} | {_ms(s['ttft_s'])} | {_rate(s['prefill_tokens_per_s'])} | {_ms(s['tpot_s'])} | "
              f"{_rate(s['decode_tokens_per_s'])} |" for s in fs["speed"]]
    acc = fs["accuracy"]
    comp = [f"{ph} {_pct(v['composed_median_abs_error'])} / {_pct(v['composed_p90_abs_error'])} ({v['points']} points"
            f"{_partly_text(v)})" for ph, v in acc["phases"].items() if not is_missing(v["composed_median_abs_error"])]
    roof = [f"{ph} {_pct(v['roofline_median_abs_error'])}" for ph, v in acc["phases"].items()]
    lines += ["", "**How well predicted** (|measured / predicted − 1|, median / p90 over points): composed from "
              "kernels timed alone + the framework at tiny shapes, nothing fitted: "
              + ("; ".join(comp) if comp else fs.get("kernel_absence") or "no kernel table in this run")
              + _not_composed_text(fs) + f"; {_loo_text(acc.get('loo'))}; "
              "the bare roofline misses by " + ", ".join(roof) + " (median).", ""]
    if fs["classes"]:
        lines += ["**Where the time goes** (share of measured time per point class: median over its points "
                  "[95% interval of that median]; the roofline in the point's own seconds, its ceilings scaled by the "
                  "canary; cause = the gap beyond the roofline that is largest at more than half of the class's points "
                  "and told apart from the next, else the two leading at most points, together):", "",
                  "| class | points | roofline | kernel gap (top ops) | framework | residual | cause |",
                  "|---|---|---|---|---|---|---|"]
        for c in fs["classes"]:
            ops = ", ".join(f"{o['op']} {_pct(o['gap_share'])}" for o in c["top_ops"])
            lines.append(f"| {c['point_class']} | {c['points']} | {_share(c, 'roofline')} | {_share(c, 'kernel_gap')}"
                         f"{f' ({ops})' if ops else ''} | {_share(c, 'framework')} | {_share(c, 'residual')} | "
                         f"{cause_cell(c)} |")
        pp = fs["per_point"]
        lines += ["", f"**Per point**: {pp['within_noise']} of {pp['point_phases']} point × phase pairs match their "
                  f"composition within noise (the larger of their own interval and the run's repeat-to-repeat spread "
                  f"of measured/composed, {_pct(pp['repeat_rel'])}); {pp['residual_named']} differ beyond it "
                  f"(*Causes per point* below).", ""]
    else:
        lines += [f"**Where the time goes**: {fs.get('kernel_absence') or 'no kernel table in this run'}, so no "
                  "measured decomposition; the fits below describe it.", ""]
    flags = fs.get("flags") or {}
    if flags:
        lines += ["**Flags** (details in *Why: flags*): " + ", ".join(f"{k} ×{n}" if n > 1 else k
                                                                    for k, n in flags.items()) + ".", ""]
    lines += ["How to read this report: docs/report.md. The fits (τ, k_mem, k_comp) have their own section, *How far from the arithmetic: the fits*.", ""]
    return lines
