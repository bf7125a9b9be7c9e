"""`python -m analysis repeatability RUN_A RUN_B`: do two runs of the same sweep give the same numbers?

Pairs the same points of two runs and reports, per phase (prefill; decode = the mean decode step of each
trajectory), the share of points whose medians agree within ±AGREE_REL, the worst pairs, and whether the two
95% intervals of the median (order statistics over repeats, bench/timing/stats.py) overlap. Repeats the canary
marked as disturbed are left out where the point kept enough quiet ones (as the harness did)."""
import json
from pathlib import Path

import pandas as pd

from analysis.load import load_run
from analysis.names import names_by_id
from bench.timing.stats import TARGET_REL, median_ci
from theory.errors import TheoryError

AGREE_REL = 0.03
WORST = 5


def per_repeat(run) -> dict[tuple[str, str], list[float]]:
    """(point_id, phase) → one value per used repeat: prefill time, or the trajectory's mean decode step."""
    s = run.samples[run.samples["repeat"] >= 0]
    if "disturbed" in s.columns:
        d = s["disturbed"].fillna(0).astype(int)
        quiet = s[d == 0]
        interfered = set(run.rows.loc[run.rows.get("interference", pd.Series(dtype=float)).fillna(0).astype(int) == 1,
                                      "point_id"]) if "interference" in run.rows else set()
        s = pd.concat([quiet[~quiet["point_id"].isin(interfered)], s[s["point_id"].isin(interfered)]])
    out = {}
    for (pid, phase), g in s.groupby(["point_id", "phase"]):
        out[(pid, phase)] = g.groupby("repeat")["time_s"].mean().tolist()
    return out


def repeatability_frame(run_a, run_b) -> pd.DataFrame:
    ra, rb = per_repeat(run_a), per_repeat(run_b)
    rows = []
    for key in sorted(set(ra) & set(rb)):
        a, b = median_ci(ra[key]), median_ci(rb[key])
        rows.append({"point_id": key[0], "phase": key[1], "median_a_s": a.median_s, "median_b_s": b.median_s,
                     "ratio_b_over_a": b.median_s / a.median_s,
                     "ci_a_low_s": a.low_s, "ci_a_high_s": a.high_s, "ci_b_low_s": b.low_s, "ci_b_high_s": b.high_s,
                     "repeats_a": a.n, "repeats_b": b.n,
                     "agree": abs(b.median_s / a.median_s - 1) <= AGREE_REL,
                     "intervals_overlap": a.low_s <= b.high_s and b.low_s <= a.high_s})
    return pd.DataFrame(rows)


def rows_missing_target(run) -> tuple[int, int]:
    """(ok rows whose interval missed ±2%, ok rows); rows of runs without intervals count as missing."""
    ok = run.ok
    if "time_ci_met" not in ok.columns:
        return len(ok), len(ok)
    return int((ok["time_ci_met"].fillna(0).astype(int) == 0).sum()), len(ok)


def summarize(frame: pd.DataFrame) -> dict:
    out = {}
    for phase, g in frame.groupby("phase") if len(frame) else []:
        worst = g.assign(dev=(g["ratio_b_over_a"] - 1).abs()).sort_values("dev", ascending=False).head(WORST)
        out[phase] = {"points": int(len(g)), "agree_share": float(g["agree"].mean()),
                      "overlap_share": float(g["intervals_overlap"].mean()),
                      "worst": [{"point_id": r.point_id, "ratio_b_over_a": float(r.ratio_b_over_a),
                                 "intervals_overlap": bool(r.intervals_overlap)} for r in worst.itertuples()]}
    return out


def box_lines(ma: dict, mb: dict) -> list[str]:
    """How fast the box itself was in each run: the canary baselines and the start-of-run ceilings, b over a. A
    pair of runs on a box that changed speed between them cannot agree, whatever the harness does."""
    figs = []
    ca, cb = ma.get("canary_baseline_s"), mb.get("canary_baseline_s")
    if ca and cb:
        figs.append(f"canary baseline {ca * 1e3:.2f} ms → {cb * 1e3:.2f} ms (time b/a {cb / ca:.2f})")
    for dt in sorted(set(ma.get("ceilings", {})) & set(mb.get("ceilings", {}))):
        ha, hb = ma["ceilings"][dt], mb["ceilings"][dt]
        fa, fb = ha.get("peak_flops_per_s", {}).get(dt), hb.get("peak_flops_per_s", {}).get(dt)
        if fa and fb:
            figs.append(f"{dt} matmul ceiling rate b/a {fb / fa:.2f}")
        ba, bb = ha.get("memory_bandwidth_bytes_per_s"), hb.get("memory_bandwidth_bytes_per_s")
        if ba and bb:
            figs.append(f"{dt} streaming bandwidth b/a {bb / ba:.2f}")
    return ["", "The box in each run (start of run): " + "; ".join(figs) + "."] if figs else []


def latest_same_sweep_pair(results: Path = Path("results")) -> list[Path]:
    """The two most recent runs of one sweep (same sweep_sha1), oldest first: the newest run that has an earlier
    twin, and the latest such twin. Runs are ordered by their start time (run.json utc_time, then run_id), not by
    file times, which a checkout resets."""
    runs = []
    for p in results.glob("*/run.json"):
        if not (p.parent / "measurements.csv").exists():
            continue
        try:
            meta = json.loads(p.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError, OSError):
            continue                              # a damaged run is not a candidate; naming it is its report's job
        if isinstance(meta, dict) and meta.get("sweep_sha1"):
            runs.append((str(meta.get("utc_time", "")), str(meta.get("run_id", p.parent.name)), meta["sweep_sha1"],
                         p.parent))
    runs.sort()
    for i in range(len(runs) - 1, 0, -1):
        twins = [r for r in runs[:i] if r[2] == runs[i][2]]
        if twins:
            return [twins[-1][3], runs[i][3]]
    raise TheoryError(f"no two runs of the same sweep under {results}/ (found {len(runs)} run(s)); run "
                      "`make bench` twice, or name two runs: make repeatability RUNS=\"results/a results/b\"")


def write_repeatability(dir_a: Path, dir_b: Path, out: Path | None = None) -> Path:
    run_a, run_b = load_run(dir_a), load_run(dir_b)
    if run_a.meta.get("sweep_sha1") != run_b.meta.get("sweep_sha1"):
        raise TheoryError(f"{dir_a} and {dir_b} ran different sweeps; repeatability needs the same sweep twice")
    frame = repeatability_frame(run_a, run_b)
    if frame.empty:
        raise TheoryError(f"{dir_a} and {dir_b} share no measured point")
    summary = summarize(frame)
    out = out or Path("results") / f"repeatability-{Path(dir_a).name[:16]}-vs-{Path(dir_b).name[:16]}"
    out.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out / "repeatability.csv", index=False, float_format="%.9g")
    missing = {"a": rows_missing_target(run_a), "b": rows_missing_target(run_b)}
    (out / "summary.json").write_text(json.dumps({"agree_rel": AGREE_REL, "target_rel": TARGET_REL,
                                                  "phases": summary, "rows_missing_target": missing}, indent=2) + "\n")
    lines = [f"# Repeatability: `{Path(dir_a).name}` vs `{Path(dir_b).name}`", "",
             f"Same sweep (`{run_a.meta.get('sweep_name')}`), {frame['point_id'].nunique()} shared points. Per phase: "
             f"the share of points whose medians agree within ±{AGREE_REL:.0%} (prefill; decode = mean decode step "
             "per trajectory), and whether the two 95% intervals of the median overlap.", "",
             "| phase | points | medians within ±3% | intervals overlap | worst b/a |", "|---|---|---|---|---|"]
    for phase, s in summary.items():
        lines.append(f"| {phase} | {s['points']} | {s['agree_share']:.0%} | {s['overlap_share']:.0%} | "
                     f"{s['worst'][0]['ratio_b_over_a']:.3f} |")
    names = names_by_id(run_a.rows)                 # a point by its shape; repeatability.csv keeps the ids
    lines += ["", "Worst pairs (b/a; overlap of the intervals):", ""]
    for phase, s in summary.items():
        lines += [f"- {phase}: " + ", ".join(f"{names.get(w['point_id'], w['point_id'])} {w['ratio_b_over_a']:.3f} "
                                               f"({'overlap' if w['intervals_overlap'] else 'disjoint'})" for w in s["worst"])]
    lines += box_lines(run_a.meta, run_b.meta)
    lines += ["", f"Rows whose 95% interval is wider than ±{TARGET_REL:.0%} of the median (each is flagged in its run's "
              f"report): a {missing['a'][0]} of {missing['a'][1]}, b {missing['b'][0]} of {missing['b'][1]}.",
              "", "Figures taken on a shared box move with the box; the canary series in each run.json shows when."]
    (out / "report.md").write_text("\n".join(lines) + "\n")
    return out / "report.md"
