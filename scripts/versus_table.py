"""Every interleaved try's versus.json as one markdown table: `python scripts/versus_table.py DIR...` (each DIR
holds <target>-<n>/versus.json folders). Rows in path order; nothing dropped. Tries that scored each trajectory
against the rounds around it (`trajectories`) get a second table, one row per trajectory; tries that sampled the
target's own kernels in the same rounds (`own_kernels`, versus --own-kernels) a third, each phase's error split
into composition × interpolation with the ops carrying the latter. Tries that kept every pass (`runs_s`, from
2026-12-04 night) get a fourth: TPOT read as the set's TPOT is (each step's median over the timed trajectories)
and as the earlier sets read it (the median of the trajectories' mean steps), each against the same prediction."""
import json
import sys
from pathlib import Path

from analysis.render.fmt import no_negative_zero
from theory.calibration.against import top_ops      # the ops a split names, the rule versus' own line uses


def tries(dirs: list[str]):
    """Every try's versus.json in path order, with the row's first cells: ("| set | target | try", its contents)."""
    for d in dirs:
        for f in sorted(Path(d).glob("*/versus.json")):
            v = json.loads(f.read_text())
            yield f"| {Path(d).name} | {v['model']} | {f.parent.name.rsplit('-', 1)[1]}", v


def rows(dirs: list[str]) -> list[str]:
    out = ["| set | target | try | TPOT measured (range), ms | predicted, ms | TPOT error | TTFT measured, ms | "
           "TTFT error | box moved TPOT / TTFT | within ±5% | first gap alone TPOT / TTFT | settling trajectory over timed, "
           "TPOT / TTFT |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for lead, v in tries(dirs):
        lo, hi = v["measured_tpot_range_s"]
        first = v.get("first_gap_only") or v["first_calibration_only"]   # the latter: whole calibrations
        ttft_moved = v.get("box_moved_first_to_last_ttft")
        within = "yes" if v["within_drift_bound"] else "no"
        if ttft_moved is None:     # whole-calibrations/ (commit a492523) judged the bound by the spread instead
            within = "—"
        out.append(f"{lead} | "
                   f"{v['measured_tpot_s'] * 1e3:.1f} ({lo * 1e3:.1f}–{hi * 1e3:.1f}) | "
                   f"{v['predicted_tpot_s'] * 1e3:.1f} | {v['tpot_error']:+.1%} | "
                   f"{v['measured_ttft_s'] * 1e3:,.1f} | {v['ttft_error']:+.1%} | "
                   f"{v['box_moved_first_to_last_tpot']:+.1%} / "
                   f"{'—' if ttft_moved is None else format(ttft_moved, '+.1%')} | {within} | "
                   f"{first['tpot_error']:+.1%} / {first['ttft_error']:+.1%} | {settled(v)} |")
    return out + trajectory_rows(dirs) + own_rows(dirs) + reading_rows(dirs)


def settled(v: dict) -> str:
    """The settling trajectories' median ratio (sets from 2026-12-03 on; earlier sets ran none)."""
    s = v.get("settle") or {}
    if not s.get("per_gap"):
        return "—"
    return f"x{s['median_tpot_over_timed']:.3f} / x{s['median_ttft_over_timed']:.3f}"


def trajectory_rows(dirs: list[str]) -> list[str]:
    out = ["", "| set | target | try | trajectory | TPOT measured, ms | TPOT error | TTFT measured, ms | TTFT error | "
           "box moved across it TPOT / TTFT | within ±5% |", "|---|---|---|---|---|---|---|---|---|---|"]
    n = 0
    for lead, v in tries(dirs):
        for t in v.get("trajectories", []):
            n += 1
            out.append(f"{lead} | {t['trajectory']} | "
                       f"{t['measured_tpot_s'] * 1e3:.1f} | {t['tpot_error']:+.1%} | "
                       f"{t['measured_ttft_s'] * 1e3:,.1f} | {t['ttft_error']:+.1%} | "
                       f"{t['box_moved_tpot']:+.1%} / {t['box_moved_ttft']:+.1%} | "
                       f"{'yes' if t['within_drift_bound'] else 'no'} |")
    return out if n else []


def own_rows(dirs: list[str]) -> list[str]:
    out = ["", "| set | target | try | phase | error | composition (model over its own kernels) | interpolation (own "
           "over predicted) | kernels / framework own over predicted | largest op shares, points |",
           "|---|---|---|---|---|---|---|---|---|"]
    n = 0
    for lead, v in tries(dirs):
        for phase, s in sorted((v.get("own_kernels") or {}).items()):
            if not s:
                continue
            n += 1
            fw = s["framework_own_over_predicted"]
            top = top_ops(s)
            out.append(f"{lead} | {phase} | "
                       f"{s['error']:+.1%} | {s['composition_error']:+.1%} | {s['interpolation_error']:+.1%} | "
                       f"{s['kernels_own_over_predicted']:+.1%} / {'—' if fw is None else format(fw, '+.1%')} | "
                       f"{', '.join(f'{op} {x * 100:+.1f}' for op, x in top)} |")
    return out if n else []


def reading_rows(dirs: list[str]) -> list[str]:
    out = ["", "| set | target | try | timed trajectories | TPOT, each step's median, ms | error | TPOT, median "
           "trajectory, ms | error |", "|---|---|---|---|---|---|---|---|"]
    n = 0
    for lead, v in tries(dirs):
        if "measured_tpot_trajectory_median_s" not in v:
            continue
        n += 1
        p, traj = v["predicted_tpot_s"], v["measured_tpot_trajectory_median_s"]
        out.append(f"{lead} | {len(v['runs_s'])} | "
                   f"{v['measured_tpot_s'] * 1e3:.1f} | {v['tpot_error']:+.1%} | {traj * 1e3:.1f} | "
                   f"{traj / p - 1:+.1%} |")
    return out if n else []


if __name__ == "__main__":
    if len(sys.argv) < 2:
        print("usage: python scripts/versus_table.py DIR...", file=sys.stderr)
        sys.exit(2)
    print(no_negative_zero("\n".join(rows(sys.argv[1:]))))     # "-0.0%" as "0.0%"
