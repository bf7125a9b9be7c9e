"""Re-score every committed interleaved try from its own files with the code of this checkout (the row-length
step of theory/calibration/regime.py, commit d0d82d4): `.venv/bin/python
results/never-built-interleaved-20261202/rescore_row_length.py` (from the repository root) prints a markdown table.
For each try: the TPOT and TTFT error as run (versus.json) and as this code predicts from the same
calibration-pooled.json, without any full-pass residual (the default), and whether the box held within ±5%.
The tries before row-length-1 were seen when the step was designed, so they are a re-reading, not a score."""
import glob
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from theory.calibration import request                                   # noqa: E402
from theory.calibration.predict import without_residuals                 # noqa: E402
from theory.hfconfig import load_model                                    # noqa: E402

D = Path(__file__).resolve().parent
TARGETS = {"tinyllama-1.1b": "tinyllama-1.1b", "unseen-d1280-L12": str(D / "unseen-d1280-L12.json")}
print("| set | try | within ±5% | TPOT error as run | this code | TTFT error as run | this code |")
print("|---|---|---|---|---|---|---|")
for f in sorted(glob.glob(str(D / "*" / "*" / "versus.json"))):
    if "diagnosis" in Path(f).parts or "whole-calibrations" in Path(f).parts:
        continue
    v = json.loads(Path(f).read_text())
    cal = json.loads((Path(f).parent / "calibration-pooled.json").read_text())
    spec = load_model(TARGETS[v["model"]])
    now = request(without_residuals(cal), spec, v["batch"], v["prompt_len"], v["generated"])
    t, f_ = "time_per_output_token_s", "time_to_first_token_s"
    print(f"| {Path(f).parts[-3]} | {Path(f).parts[-2]} | {'yes' if v.get('within_drift_bound') else 'no'} | "
          f"{v['tpot_error']:+.1%} | {v['measured_tpot_s'] / now[t] - 1:+.1%} | "
          f"{v['ttft_error']:+.1%} | {v['measured_ttft_s'] / now[f_] - 1:+.1%} |")
