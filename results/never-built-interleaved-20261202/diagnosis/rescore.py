"""Scratch: LOO over committed runs and re-prediction of committed never-built tries, with the current code."""
import json, sys, glob, os
sys.path.insert(0, "/work/main")
os.chdir("/work/main")
from analysis.load import load_run
from analysis.loo import run_loo
from theory.calibration.predict import request
from theory.hfconfig import load_model
RUNS = sorted(glob.glob("results/2026*-cpu-default-cpu")) + ["results/20261123T154354Z-cpu-unseen-cpu"]
D = "results/never-built-interleaved-20261202"
def loo():
    for r in RUNS:
        out = run_loo(load_run(r))
        s = []
        for k in ("measured", "drift_scaled"):
            ph = out[k]["phases"]
            s.append(k[:5] + " " + " ".join(f"{p[:3]} {100*ph[p]['median_abs_error']:.1f}/{100*ph[p]['p90_abs_error']:.1f}" for p in ("decode", "prefill")))
        print(os.path.basename(r)[:16], " | ".join(s), flush=True)
def tries():
    for v in sorted(glob.glob(f"{D}/*/*/versus.json")):
        j = json.load(open(v)); d = os.path.dirname(v)
        cal = json.load(open(f"{d}/calibration-pooled.json")) if os.path.exists(f"{d}/calibration-pooled.json") else None
        if cal is None: continue
        tgt = j["model"]; ref = f"{D}/{tgt}.json" if os.path.exists(f"{D}/{tgt}.json") else tgt
        spec = load_model(ref)
        p = request(cal, spec, j["batch"], j["prompt_len"], j["generated"])
        print(f"{d[len(D)+1:]:40s} tpot {100*(j['measured_tpot_s']/p['time_per_output_token_s']-1):+6.1f} (was {100*j['tpot_error']:+6.1f})  ttft {100*(j['measured_ttft_s']/p['time_to_first_token_s']-1):+6.1f} (was {100*j['ttft_error']:+6.1f}) drift {j.get('within_drift_bound')}", flush=True)
if "tries" in sys.argv: tries()
if "loo" in sys.argv: loo()
