"""Re-score the --full-passes tries from their committed files with the code of this checkout:
`.venv/bin/python results/never-built-interleaved-20261202/rescore_residual.py` (from the repository root).
For each try: the TPOT and TTFT error as run (versus.json), as this code predicts from calibration-pooled.json,
and without the residual. The sets ran with the residual fitted under the framework's clamps (≥ 0 slope and
fixed part); from the commit after 11a6be2 on, the residual is fitted by a plain least-squares line."""
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
print("| set | try | TPOT error as run | this code | without residual | TTFT error as run | this code | without |")
print("|---|---|---|---|---|---|---|---|")
for f in sorted(glob.glob(str(D / "full-passes-*" / "*" / "versus.json"))):
    v = json.loads(Path(f).read_text())
    cal = json.loads((Path(f).parent / "calibration-pooled.json").read_text())
    spec = load_model(TARGETS[v["model"]])
    now = request(cal, spec, v["batch"], v["prompt_len"], v["generated"])
    bare = request(without_residuals(cal), spec, v["batch"], v["prompt_len"], v["generated"])
    err = lambda p, key, m: m / p[key] - 1
    t, f_ = "time_per_output_token_s", "time_to_first_token_s"
    mt, mf = v["measured_tpot_s"], v["measured_ttft_s"]
    print(f"| {Path(f).parts[-3]} | {Path(f).parts[-2]} | {v['tpot_error']:+.1%} | {err(now, t, mt):+.1%} | "
          f"{err(bare, t, mt):+.1%} | {v['ttft_error']:+.1%} | {err(now, f_, mf):+.1%} | {err(bare, f_, mf):+.1%} |")
