"""Do two runs of one sweep name the same class-level causes, with shares within their intervals?

    .venv/bin/python scripts/class_agreement.py RUN_A RUN_B

Rebuilds each run's class table from its directory (analysis only: join, compose, decompose, classes; nothing is
written) and, per class present in both, compares the causes (the same, or compatible: one names two pieces
together that hold the other's) and the four shares (roofline, kernel gap, framework, residual):
`overlap` = the two 95% intervals overlap; `mutual` = each run's share lies inside the other run's interval. It
prints one line per class × share and the counts; exit status 0 (a check to read, not a gate)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))     # this checkout's analysis/, run from anywhere
from analysis.classes import base_width, class_table, noise_floor, point_table  # noqa: E402
from analysis.compose import load_compose  # noqa: E402
from analysis.decompose import add_explain, op_table  # noqa: E402
from analysis.fit import fit_and_score  # noqa: E402
from analysis.join import join  # noqa: E402
from analysis.load import load_run  # noqa: E402
from theory.errors import TheoryError  # noqa: E402

PIECES = ("roofline", "kernel_gap", "framework", "residual")


def classes(run_dir: Path):
    run = load_run(run_dir)
    joined = join(run)
    joined = joined[joined["execution"] == "eager"]
    ceil = next(iter(run.meta.get("ceilings", {}).values()), {})
    df, summary = fit_and_score(joined, ceil.get("llc_bytes"))
    df = add_explain(run, df, summary)
    loaded = load_compose(run_dir)
    if loaded is None:
        raise TheoryError(f"{run_dir}: no compose.csv / framework.csv, so no class table")
    ops = op_table(run, df, loaded[0])
    pts = point_table(df, ops, noise_floor(run, df), base_width(run, df))
    return class_table(pts, ops, df)


def agreement(a, b) -> tuple[list[dict], dict]:
    rows = []
    for _, ra in a.iterrows():
        match = b[b["point_class"] == ra["point_class"]]
        if match.empty:
            continue
        rb = match.iloc[0]
        for piece in PIECES:
            va, la, ha = (float(ra[f"{piece}_share{s}"]) for s in ("", "_low", "_high"))
            vb, lb, hb = (float(rb[f"{piece}_share{s}"]) for s in ("", "_low", "_high"))
            rows.append({"point_class": ra["point_class"], "piece": piece, "a": (va, la, ha), "b": (vb, lb, hb),
                         "overlap": la <= hb and lb <= ha, "mutual": la <= vb <= ha and lb <= va <= hb,
                         "same_cause": ra["cause"] == rb["cause"],
                         "compatible_cause": compatible(ra["cause"], rb["cause"])})
    counts = {"shares": len(rows), "overlap": sum(r["overlap"] for r in rows),
              "mutual": sum(r["mutual"] for r in rows),
              "classes": len({r["point_class"] for r in rows}),
              "same_cause": len({r["point_class"] for r in rows if r["same_cause"]}),
              "compatible_cause": len({r["point_class"] for r in rows if r["compatible_cause"]})}
    return rows, counts


def compatible(a: str, b: str) -> bool:
    """The same cause, or one run's cause among the other's pieces named together ("kernel_gap ≈ framework")."""
    sa, sb = set(a.split(" ≈ ")), set(b.split(" ≈ "))
    return sa <= sb or sb <= sa


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: scripts/class_agreement.py RUN_A RUN_B", file=sys.stderr)
        return 2
    try:
        a, b = (classes(Path(d)) for d in argv)
    except TheoryError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    rows, counts = agreement(a, b)
    f = lambda t: f"{t[0]:+.0%} [{t[1]:+.0%}, {t[2]:+.0%}]"
    for r in rows:
        verdict = "mutual" if r["mutual"] else "overlap" if r["overlap"] else "APART"
        print(f"{r['point_class']:32s} {r['piece']:10s} {f(r['a']):>20s} {f(r['b']):>20s}  {verdict}")
    print(f"same cause: {counts['same_cause']} of {counts['classes']} classes (compatible, one run naming two pieces "
          f"together that hold the other's: {counts['compatible_cause']}); intervals overlap: "
          f"{counts['overlap']} of {counts['shares']} shares; each inside the other's interval: "
          f"{counts['mutual']} of {counts['shares']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
