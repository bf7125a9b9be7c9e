"""Re-read committed interleaved tries as if their calibrations had carried a row profile: the one this box's two
probe runs measured (probe-1.txt, probe-2.txt: per row length, the mean of their medians), moved by the patch
row-profile.patch (apply it first: `git apply results/never-built-interleaved-20261202/diagnosis/row-length-probe/
row-profile.patch`). Prints, per try, the TPOT and TTFT error without and with the profile, then the decode
kernels' own over predicted (the target's own kernels, same rounds, context = prompt) without and with it.
`.venv/bin/python <this file> framework-rounds-3 framework-rounds-4` (set names). The probe ran on 2026-12-04 on
the box of framework-rounds-3/-4, some minutes after them: only those sets are a like-for-like reading."""
import glob
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[4]))
from theory.calibration import request
from theory.calibration.predict import without_residuals
from theory.hfconfig import load_model
D = Path(__file__).resolve().parents[2]
prof = {}
for f in ["probe-1.txt", "probe-2.txt"]:
    for line in (D / "diagnosis/row-length-probe" / f).read_text().splitlines()[2:]:
        k, n, med, *_ = line.split(); prof.setdefault(int(k), []).append(float(med) * 1e-9)
rp = {"m": 1, "k": sorted(prof), "per_element_s": [sum(prof[k]) / len(prof[k]) for k in sorted(prof)]}
T = {"tinyllama-1.1b": "tinyllama-1.1b", "unseen-d1280-L12": str(D / "unseen-d1280-L12.json")}
for s in sys.argv[1:]:
    for f in sorted(glob.glob(str(D / s / "*" / "versus.json"))):
        v = json.loads(Path(f).read_text()); cal = without_residuals(json.loads((Path(f).parent / "calibration-pooled.json").read_text()))
        spec = load_model(T[v["model"]])
        a = request(cal, spec, v["batch"], v["prompt_len"], v["generated"])
        b = request({**cal, "row_profile": rp}, spec, v["batch"], v["prompt_len"], v["generated"])
        t, ft = "time_per_output_token_s", "time_to_first_token_s"
        print(s, Path(f).parent.name, f"TPOT {v['measured_tpot_s']/a[t]-1:+.1%} -> {v['measured_tpot_s']/b[t]-1:+.1%}  TTFT {v['measured_ttft_s']/a[ft]-1:+.1%} -> {v['measured_ttft_s']/b[ft]-1:+.1%}  within={v['within_drift_bound']}")
print("kernels own/predicted, decode ctx=prompt")
from theory.calibration.predict import predict_pass
for s in sys.argv[1:]:
    for f in sorted(glob.glob(str(D / s / "*" / "versus.json"))):
        v = json.loads(Path(f).read_text()); cal = without_residuals(json.loads((Path(f).parent / "calibration-pooled.json").read_text()))
        own = json.loads((Path(f).parent / "calibration-own.json").read_text())
        spec = load_model(T[v["model"]])
        op = [p for p in own["passes"] if p["phase"] == "decode" and p["context_len"] == v["prompt_len"]][0]
        ok = sum(o["count"] * o["kernel_s"] for o in op["ops"].values())
        out = []
        for c in (cal, {**cal, "row_profile": rp}):
            pp = predict_pass(c, spec, "decode", v["batch"], v["prompt_len"], v["prompt_len"])
            out.append(ok / sum(o["time_s"] for o in pp.ops.values()) - 1)
        print(s, Path(f).parent.name, f"{out[0]:+.1%} -> {out[1]:+.1%}")
