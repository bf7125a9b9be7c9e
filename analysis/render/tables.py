"""Report tables, one function each, moved out of report.py: ceilings, the fits, points, the profiler's shares,
KV memory per token. Points are named by shape (analysis/names.py); hashes stay in the CSVs."""
import math

import pandas as pd

from analysis.render.fmt import point_name


def pct(x) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.1%}"


def ms(x) -> str:
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x * 1e3:.3f}"


def rate(tokens, time_s) -> str:
    """Measured throughput in tokens/s; the denominator is named in the table's note."""
    return "" if time_s is None or not time_s > 0 else f"{tokens / time_s:,.1f}"


def ceilings_md(run) -> list[str]:
    lines = ["| dtype | matmul peak (GFLOP/s) | streaming read, matvec (GB/s) | DRAM copy (GB/s, read+write) | "
             "in-cache copy (GB/s, read+write) | last-level cache (MiB): reported / effective | per-op overhead (µs) |",
             "|---|---|---|---|---|---|---|"]
    gb = lambda v: "" if v is None else f"{v / 1e9:.1f}"
    for dt, c in run.meta.get("ceilings", {}).items():
        det = run.meta.get("ceilings_detail", {}).get(dt, {})
        llc, eff = c.get("llc_bytes"), det.get("llc_effective_bytes")
        llc_text = "" if llc is None else f"{llc / 2**20:.0f}" + ("" if eff is None else f" / {eff / 2**20:.0f}")
        lines.append(f"| {dt} | {c['peak_flops_per_s'][dt] / 1e9:.1f} | {gb(c['memory_bandwidth_bytes_per_s'])} | "
                     f"{gb(det.get('copy_bytes_per_s_dram'))} | {gb(det.get('copy_bytes_per_s_in_cache'))} | "
                     f"{llc_text} | {c['launch_overhead_s'] * 1e6:.2f} |")
    lines += ["", "The roofline uses the matmul peak and the streaming-read bandwidth; the per-op overhead is one "
              "small op timed directly, to set beside the fitted τ below. The effective last-level cache is the "
              "working set at which a matrix-vector read falls halfway (in log terms) from its best rate to DRAM's "
              "(bench/ceilings.py); the kernel microbenchmarks treat a model as cached only when what it streams per pass "
              "fits half of it (bench/kernels/point.py)."]
    if run.meta.get("device") == "cuda":
        lines += ["", f"Datasheet roofline beside the measured one: {run.datasheet_line()}."]
    return lines


def points_label(s: dict) -> str:
    """The run's points in this phase, and how many each score covers when that differs (a one-point run has no
    held-out fit; a point without kernels is not composed; a point in the cache is left out of the fits)."""
    run_n = s.get("points_in_run", s.get("points"))
    counts = {"composed": (s.get("composed") or {}).get("points"), "roofline": s["before_fit"].get("points"),
              "held-out fits": s.get("tau_fit", s).get("points")}
    scored = {k: v for k, v in counts.items() if v is not None}
    noun = "point" if run_n == 1 else "points"
    if all(v == run_n for v in scored.values()):
        return f"{run_n} {noun}"
    return f"{run_n} {noun} in the run; scored: " + ", ".join(f"{k} {v}" for k, v in scored.items())


def fits_md(summary) -> list[str]:
    """The fits, explained as fits: τ and the calibrated factors are least-squares fits to this run's points,
    each point scored by a fit that did not see it; they summarise, the measured decomposition explains."""
    lines = ["These are fits, not measurements: τ is one cost per dispatched op and k_mem, k_comp scale the memory "
             "and compute rooflines, chosen by least squares (on relative error) to match this run's points. They "
             "say how far a two- or three-number model gets; the causes above come from the measured decomposition "
             "(kernels timed alone, the framework at tiny shapes), not from these fits.", "",
             "Errors are |measured/predicted − 1| per point (the median over a point's decode steps), then the median "
             "and p90 over points, each point predicted by a fit that did not see it.", "",
             "| phase | points | roofline only: median / p90 | + τ per dispatched op: τ, median / p90 | "
             "calibrated: k_mem, k_comp, τ, median / p90 |", "|---|---|---|---|---|"]
    for phase, s in summary.items():
        c, tf = s["calibrated"], s.get("tau_fit", s)
        lines.append(f"| {phase} | {tf['points']} | {pct(s['before_fit']['median_abs_error'])} / "
                     f"{pct(s['before_fit']['p90_abs_error'])} | {s['tau_s'] * 1e6:.2f} µs, {pct(tf['median_abs_error'])} / "
                     f"{pct(tf['p90_abs_error'])} | {c['k_mem']:.2f}, {c['k_comp']:.2f}, {c['tau_s'] * 1e6:.2f} µs, "
                     f"{pct(c['median_abs_error'])} / {pct(c['p90_abs_error'])} |")
    lines += [""] + [f"- {phase}: ({points_label(s)})" for phase, s in summary.items()]
    lines += ["", "Calibrated: time = k_mem·memory + k_comp·compute + n_dispatch·τ; 1/k is the fraction of the measured "
              "ceiling that the model's real layers reach (e.g. k_mem 1.6 = 62% of the streaming bandwidth).", "",
              "By regime (held out):", "",
              "| phase | regime | points | roofline only | + τ | calibrated | calibrated p90 |", "|---|---|---|---|---|---|---|"]
    for phase, s in summary.items():
        for reg, r in s["by_regime"].items():
            lines.append(f"| {phase} | {reg} | {r['after_fit']['points']} | {pct(r['before_fit']['median_abs_error'])} | "
                         f"{pct(r['after_fit']['median_abs_error'])} | {pct(r['calibrated']['median_abs_error'])} | "
                         f"{pct(r['calibrated']['p90_abs_error'])} |")
    return lines


def points_md(points: pd.DataFrame) -> list[str]:
    lines = ["| point | d | L | batch | prompt | gen | attention | cache | TTFT measured (ms) | TTFT roofline (ms) | "
             "TTFT fitted (ms) | TPOT measured (ms) | TPOT roofline (ms) | TPOT fitted (ms) | decode regime |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    lines[0] += " prefill tokens/s | decode tokens/s |"
    lines[1] += "---|---|"
    for _, p in points.iterrows():
        lines.append(f"| {point_name(p)} | {p['hidden_size']} | {p['num_hidden_layers']} | {p['batch']} | {p['prompt_len']} | "
                     f"{p['generated']} | {p['attention']} | {p['cache']} | {ms(p['prefill_measured_time_s'])} | "
                     f"{ms(p['prefill_predicted_time_s_ceilings'])} | {ms(p['prefill_predicted_time_s_fitted'])} | "
                     f"{ms(p['decode_measured_time_s'])} | {ms(p['decode_predicted_time_s_ceilings'])} | "
                     f"{ms(p['decode_predicted_time_s_fitted'])} | {p['decode_regime']} | "
                     f"{rate(p['batch'] * p['prompt_len'], p['prefill_measured_time_s'])} | "
                     f"{rate(p['batch'], p['decode_measured_time_s'])} |")
    return lines


def wall_md(shares: pd.DataFrame) -> list[str]:
    """CUDA: the step's kernel time against the roofline, its wall time against roofline + overhead."""
    if "kernel_s" not in shares:
        return []
    k, w = shares["kernel_s"] / shares["predicted_roofline_s"], shares["wall_s"] / shares["predicted_roofline_overhead_s"]
    return [f"Kernel time / roofline: median {k.median():.2f}x; wall time (kernels + idle, unprofiled median) / "
            f"(roofline + fitted overhead): median {w.median():.2f}x, over {len(shares)} profiled steps.", ""]


def profile_md(shares: pd.DataFrame, flops: pd.DataFrame, names: dict[str, str]) -> list[str]:
    if shares.empty:
        return ["", "## Where the time goes", "", "No profile in this run (`--no-profile`)."]
    lines = ["", "## Where the time goes (torch.profiler, own trajectories)", "",
             f"Compared: {shares['share_basis'].iloc[0]}. Theory's shares are the as-run roofline (with the fitted "
             "per-op overhead spread over its op instances where the measured side includes it). "
             "Inflation = profiled step wall time / unprofiled median.", "", *wall_md(shares),
             "| point | d | L | attention | phase | step | attention meas/pred | MLP meas/pred | other meas/pred | unattributed | inflation |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for _, r in shares.iterrows():
        lines.append(f"| {names.get(r['point_id'], r['point_id'])} | {r['hidden_size']} | {r['num_hidden_layers']} | {r['attention']} | {r['phase']} | "
                     f"{r['step']} | {r['measured_share_attention']:.0%} / {r['predicted_share_attention']:.0%} | "
                     f"{r['measured_share_mlp']:.0%} / {r['predicted_share_mlp']:.0%} | "
                     f"{r['measured_share_other']:.0%} / {r['predicted_share_other']:.0%} | "
                     f"{r['measured_share_unattributed']:.0%} | {r['inflation']:.1f}x |")
    if len(flops):
        lines += ["", "FLOP cross-check (FlopCounterMode / theory, over every profiled point; attention against the "
                  "unhalved count):", "", "| op | min ratio | max ratio | rows |", "|---|---|---|---|"]
        for op, g in flops.groupby("op"):
            lines.append(f"| {op} | {g['ratio'].min():.4f} | {g['ratio'].max():.4f} | {len(g)} |")
    return lines


def ceil_overhead_s(run) -> float:
    return next(iter(run.meta.get("ceilings", {}).values()), {}).get("launch_overhead_s", 0.0)


KV_COLUMNS = [("naive bf16 4·L·d (B/token)", "naive_bf16_mha_bytes_per_token"), ("theory (B/token)", "theory_bytes_per_token"),
              ("tensors (B/token)", "tensor_bytes_per_token"), ("allocated peak (B/token)", "allocated_peak_bytes_per_token"),
              ("reserved (B/token)", "reserved_bytes_per_token"), ("peak RSS (B/token)", "rss_peak_bytes_per_token")]
CPU_ONLY_NOTE = ("Left out on CPU: *reserved* (a CPU has no caching allocator, so nothing is reserved) and *peak RSS "
                 "per token* (the process's peak resident set grows only when the C allocator asks the OS for new "
                 "pages, so it reads 0 on most points by construction); both stay in joined.csv.")


def kv_md(kv: pd.DataFrame, names: dict[str, str], device: str) -> list[str]:
    if kv.empty:
        return []
    cols = [c for c in KV_COLUMNS if not (device == "cpu" and c[1] in ("reserved_bytes_per_token",
                                                                       "rss_peak_bytes_per_token"))]
    cols = [c for c in cols if c[1] in kv and kv[c[1]].notna().any()]
    fmt = lambda v: "" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.0f}"
    lines = ["", "## KV-cache memory per token", ""] + ([CPU_ONLY_NOTE, ""] if device == "cpu" else [])
    lines += ["| point | cache | " + " | ".join(h for h, _ in cols) + " |", "|---|---|" + "---|" * len(cols)]
    for _, r in kv.iterrows():
        lines.append(f"| {names.get(r['point_id'], r['point_id'])} | {r['cache']} | "
                     + " | ".join(fmt(r[k]) for _, k in cols) + " |")
    return lines
