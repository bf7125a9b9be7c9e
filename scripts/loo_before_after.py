"""Leave-one-out of committed runs: the figures their summary.json holds (the code that wrote them) against this
code's, median / p90 in % per phase, as measured and drift-scaled. Used to score a change to theory's interpolation
on every committed run (docs/calibration.md). Usage: python scripts/loo_before_after.py <run id prefix> ..."""
import glob
import json
import sys
import time

from analysis.load import load_run
from analysis.loo import leave_one_out


def main(prefixes: list[str]) -> None:
    for r in prefixes:
        d = glob.glob(f"results/{r}*")[0]
        before = json.load(open(d + "/summary.json"))["loo"]
        run, t = load_run(d), time.time()
        out = []
        for key, scaled in (("measured", False), ("drift_scaled", True)):
            after = leave_one_out(run, scaled)
            for ph in ("decode", "prefill"):
                b, a = before[key]["phases"][ph], after["phases"][ph]
                out.append(f"{key[:5]} {ph[:3]} {b['median_abs_error'] * 100:4.1f}/{b['p90_abs_error'] * 100:4.1f} -> "
                           f"{a['median_abs_error'] * 100:4.1f}/{a['p90_abs_error'] * 100:4.1f}")
        print(r, " | ".join(out), f"({time.time() - t:.0f}s)", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
