"""`python -m analysis`: join measured with predicted, explain the gaps, report; compare runs across hardware."""
import sys
from pathlib import Path

from analysis.load import latest_run
from theory.cliutil import HelpFormatter, OneLineParser, run_main

EXAMPLES = """examples:
  python -m analysis report                                   # the latest run under results/
  python -m analysis report results/<run_id>
  python -m analysis compare results/<run a> results/<run b>   # what `make compare RUNS=...` runs
  python -m analysis repeatability results/<run a> results/<run b>   # two runs of one sweep: do they agree?"""


def build_parser() -> OneLineParser:
    p = OneLineParser(prog="python -m analysis", description=__doc__.strip(), formatter_class=HelpFormatter,
                      epilog=EXAMPLES)
    sub = p.add_subparsers(dest="command", required=True, parser_class=OneLineParser, help="what to do")
    r = sub.add_parser("report", help="write report.md, joined.csv, summary.json and figures/ for a run",
                       formatter_class=HelpFormatter, epilog=EXAMPLES)
    r.add_argument("run_dir", nargs="?", type=Path, help="run directory (default: the latest under results/)")
    c = sub.add_parser("compare", help="line up the same points across runs (e.g. two boxes)",
                       formatter_class=HelpFormatter, epilog=EXAMPLES)
    c.add_argument("run_dirs", nargs="+", type=Path, help="two or more run directories; the first is the baseline a")
    c.add_argument("--out", type=Path, help="output directory (default: results/compare-<run ids>)")
    rp = sub.add_parser("repeatability", help="two runs of the same sweep: share of points that agree within ±3%%",
                        formatter_class=HelpFormatter, epilog=EXAMPLES)
    rp.add_argument("run_dirs", nargs="*", type=Path, help="two run directories (default: the latest two runs of one sweep under results/)")
    rp.add_argument("--out", type=Path, help="output directory (default: results/repeatability-<run ids>)")
    return p


def main(argv=None) -> int:
    a = build_parser().parse_args(argv)
    if a.command == "report":
        from analysis.report import write_report
        run_dir = a.run_dir or latest_run()
        print(write_report(run_dir))
    elif a.command == "repeatability":
        from analysis.repeatability import latest_same_sweep_pair, write_repeatability
        dirs = a.run_dirs or latest_same_sweep_pair()
        if len(dirs) != 2:
            raise ValueError("repeatability needs exactly two run directories")
        print(write_repeatability(dirs[0], dirs[1], a.out))
    else:
        from analysis.compare import write_compare
        if len(a.run_dirs) < 2:
            raise ValueError("compare needs at least two run directories")
        print(write_compare(a.run_dirs, a.out))
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main, errors=(ValueError,)))
