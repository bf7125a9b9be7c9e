"""The comms section: measured collectives against theory's ring all-reduce with the measured α/β, the
tensor-parallel layer's communication against theory's two all-reduces per layer, and the batch at which
an all-reduce stops being latency-bound."""
import json
import math
from pathlib import Path

import pandas as pd

from theory.hardware import hardware_presets
from theory.parallel import ALLREDUCES_PER_LAYER, ring_allreduce_s

REFERENCE_GPUS = ("a100-sxm-80gb", "h100-sxm-80gb")     # datasheet interconnects shown beside the measured one


def comms_report(run_dir: Path) -> Path:
    meta = json.loads((run_dir / "run.json").read_text())
    rows = pd.read_csv(run_dir / "comms.csv")
    fit = json.loads((run_dir / "comms_fit.json").read_text())
    n = int(meta["world_size"])
    alpha, beta = fit["interconnect_latency_s"], fit["interconnect_bandwidth_bytes_per_s"]
    ar = rows[rows["op"] == "all_reduce"].copy()
    ar["predicted_time_s"] = [ring_allreduce_s(b, n, beta, alpha) for b in ar["message_bytes"]]
    ar["ratio"] = ar["time_s"] / ar["predicted_time_s"]
    crossover_bytes = alpha * beta / (2 * (n - 1) / n)              # α = factor·bytes/β
    lines = [f"# Communication: {meta['run_id']}", "",
             f"{meta.get('backend')} with {n} ranks on {meta.get('device_name')} ({meta.get('host')}); torch "
             f"{meta.get('torch')}; every sample is the maximum over ranks after a barrier; {meta.get('repeats')} repeats.",
             "", "## Fitted interconnect (all-reduce, ring model t = α + 2(N−1)/N · bytes/β)", "",
             f"- α (latency): **{alpha * 1e6:.1f} µs**", f"- β (per-direction bandwidth): **{beta / 1e9:.3f} GB/s**",
             f"- all-gather fit: α {fit['fits']['all_gather']['interconnect_latency_s'] * 1e6:.1f} µs, "
             f"β {(fit['fits']['all_gather']['interconnect_bandwidth_bytes_per_s'] or 0) / 1e9:.3f} GB/s",
             f"- an all-reduce stops being latency-bound above **{crossover_bytes / 1e3:.1f} KB** per message "
             "(α equals the bandwidth term)", "",
             "For comparison, datasheet interconnects with the arithmetic article's 10 µs latency guess: "
             + "; ".join(f"{h}: β {hardware_presets()[h].interconnect_bandwidth_bytes_per_s / 1e9:.0f} GB/s" for h in REFERENCE_GPUS),
             "", "## All-reduce: measured vs theory with the measured α/β", "",
             "| message (B) | measured (µs) | p10-p90 (µs) | predicted (µs) | measured/predicted | bus bandwidth (GB/s) |",
             "|---|---|---|---|---|---|"]
    for _, r in ar.iterrows():
        lines.append(f"| {int(r['message_bytes'])} | {r['time_s'] * 1e6:.1f} | {r['time_p10_s'] * 1e6:.1f}-{r['time_p90_s'] * 1e6:.1f} | "
                     f"{r['predicted_time_s'] * 1e6:.1f} | {r['ratio']:.2f} | {r['busbw_bytes_per_s'] / 1e9:.3f} |")
    tp_path = run_dir / "tp.csv"
    if tp_path.exists():
        tp = pd.read_csv(tp_path)
        lines += ["", "## Tensor-parallel decoder layer", "",
                  f"Megatron-style split over {n} ranks; {ALLREDUCES_PER_LAYER} all-reduces per layer of batch·tokens·d "
                  "fp32 values. Predicted comms = 2 × ring all-reduce with the measured α/β; per datasheet = the same "
                  "messages over each reference GPU's link.", "",
                  "| d | phase | tokens | layer (ms) | compute (ms) | comms measured (ms) | comms predicted (ms) | "
                  + " | ".join(f"{h} (ms)" for h in REFERENCE_GPUS) + " | latency-bound below batch | max \\|sharded − unsharded\\| |",
                  "|---|---|---|---|---|---|---|" + "---|" * len(REFERENCE_GPUS) + "---|---|"]
        for _, r in tp.iterrows():
            msg = int(r["allreduce_bytes"]) / max(1, int(r["allreduces"]))
            pred = ALLREDUCES_PER_LAYER * ring_allreduce_s(msg, n, beta, alpha)
            sheets = []
            for h in REFERENCE_GPUS:
                hw = hardware_presets()[h]
                sheets.append(ALLREDUCES_PER_LAYER * ring_allreduce_s(msg, n, hw.interconnect_bandwidth_bytes_per_s,
                                                                      hw.interconnect_latency_s))
            per_seq = int(r["tokens"]) * int(r["hidden_size"]) * 4
            batch_star = math.ceil(crossover_bytes / per_seq)
            lines.append(f"| {r['hidden_size']} | {r['phase']} | {r['tokens']} | {r['time_s'] * 1e3:.3f} | "
                         f"{r['compute_s'] * 1e3:.3f} | {r['comm_s'] * 1e3:.3f} | {pred * 1e3:.3f} | "
                         + " | ".join(f"{s * 1e3:.4f}" for s in sheets)
                         + f" | {batch_star} | {r['max_abs_diff']:.1e} |")
    out = run_dir / "report.md"
    out.write_text("\n".join(lines) + "\n")
    return out
