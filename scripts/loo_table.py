"""Every committed run's leave-one-out figures as one markdown table, read from the runs' summary.json alone:
`python scripts/loo_table.py results/<run>...` (rows in argument order; a run without `loo` gets a row saying so).

Columns: as measured, drift-scaled (the canary), yardstick-scaled where the run has yardsticks, each "median /
p90" of |measured/predicted − 1| over points, per phase; then, where `partly_resident` flagged points, the
decode figures without them. The issue's bar is ≤ 10% / ≤ 20% for both phases (issue 21)."""
import json
import sys
from pathlib import Path

BASES = ("measured", "drift_scaled", "yardstick_scaled")


def pair(phase: dict | None) -> str:
    if not phase or phase.get("median_abs_error") is None:
        return "—"
    return f"{phase['median_abs_error']:.1%} / {phase['p90_abs_error']:.1%}"


def meets(phases: dict) -> bool:
    return all(phases.get(ph) and phases[ph]["median_abs_error"] <= 0.10 and phases[ph]["p90_abs_error"] <= 0.20
               for ph in ("decode", "prefill"))


def row(run: Path) -> str:
    s = json.loads((run / "summary.json").read_text())
    loo = s.get("loo") or {}
    if not loo.get("measured"):
        return f"| {run.name} | no leave-one-out in summary.json | | | | | | |"
    cells = []
    for basis in BASES:
        phases = (loo.get(basis) or {}).get("phases") or {}
        cells.append(f"{pair(phases.get('decode'))}; {pair(phases.get('prefill'))}" if phases else "—")
    points = loo["measured"]["phases"]["decode"]["points"]
    flagged = loo["drift_scaled"]["phases"]["decode"].get("partly_resident_points", 0)
    without = loo["drift_scaled"]["phases"]["decode"].get("without_partly_resident") if flagged else None
    bar = ", ".join(b.replace("_", "-") for b in BASES if loo.get(b) and meets(loo[b]["phases"])) or "none"
    return (f"| {run.name} | {points} | {' | '.join(cells)} | {flagged} | "
            f"{pair(without) if without else '—'} | {bar} |")


def table(runs: list[Path]) -> list[str]:
    return ["| run | points | as measured: decode; prefill | drift-scaled: decode; prefill | "
            "yardstick-scaled: decode; prefill | partly resident | drift-scaled decode without them | meets the bar |",
            "|---|---|---|---|---|---|---|---|"] + [row(r) for r in runs]


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python scripts/loo_table.py results/<run>...", file=sys.stderr)
        return 2
    missing = [a for a in argv if not (Path(a) / "summary.json").is_file()]
    if missing:
        print(f"no summary.json in {missing[0]}", file=sys.stderr)
        return 2
    print("\n".join(table([Path(a) for a in argv])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
