"""report.md, joined.csv and summary.json for one run, rebuilt from the run directory alone."""
import math
from pathlib import Path

import pandas as pd

from analysis.breakdown import breakdown_table, flop_check, op_points
from analysis.render.explain import add_explain, explain_section
from analysis.render.fmt import csv_text, json_text, no_negative_zero, point_name
from analysis.fit import fit_and_score
from analysis.flags import all_flags, per_point, share_flags
from analysis.render.noise import noise_md
from analysis.join import join
from analysis.load import load_run
from analysis.modes import modes_accuracy, modes_figure, modes_md, modes_table
from analysis.render.plots import all_figures
from analysis.render.summary_md import summary_md


def pct(x) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.1%}"


def ms(x) -> str:
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x * 1e3:.3f}"


def rate(tokens, time_s) -> str:
    """Measured throughput in tokens/s; the denominator is named in the table's note."""
    return "" if time_s is None or not time_s > 0 else f"{tokens / time_s:,.1f}"


def analyse(run_dir: Path):
    run = load_run(run_dir)
    if run.ok.empty:                                  # only skipped, oom or error points: report what was tried
        run.modes = pd.DataFrame()
        return run, pd.DataFrame(), pd.DataFrame(), {}, [], pd.DataFrame(), pd.DataFrame(), pd.DataFrame()
    joined_all = join(run)
    joined = joined_all[joined_all["execution"] == "eager"]       # τ and the flags: eager points (modes below)
    ceil = next(iter(run.meta.get("ceilings", {}).values()), {})
    df, summary = fit_and_score(joined, ceil.get("llc_bytes"))
    run.modes = modes_table(joined_all, run.samples, summary.get("decode", {}).get("tau_s") or 0.0,
                            ceil.get("launch_overhead_s", 0.0), run)
    df = add_explain(run, df, summary)               # composed prediction: the headline errors when measured
    points = per_point(df) if len(df) else pd.DataFrame()
    flags, kv = all_flags(df, points, run.meta.get("device", "cpu"), run.samples) if len(df) else ([], pd.DataFrame())
    shares = breakdown_table(run, df) if len(df) else pd.DataFrame()
    flops = flop_check(run, df) if len(df) else pd.DataFrame()
    flags += share_flags(shares)
    return run, df, points, summary, flags, kv, shares, flops


def _ceilings_md(run) -> list[str]:
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


def _accuracy_md(summary) -> list[str]:
    lines = ["Errors are |measured/predicted − 1| per point (the median over a point's decode steps), then the median "
             "and p90 over points, each point predicted by a fit that did not see it.", "",
             "| phase | points | roofline only: median / p90 | + τ per dispatched op: τ, median / p90 | "
             "calibrated: k_mem, k_comp, τ, median / p90 |", "|---|---|---|---|---|"]
    for phase, s in summary.items():
        c, tf = s["calibrated"], s.get("tau_fit", s)
        lines.append(f"| {phase} | {tf['points']} | {pct(s['before_fit']['median_abs_error'])} / "
                     f"{pct(s['before_fit']['p90_abs_error'])} | {s['tau_s'] * 1e6:.2f} µs, {pct(tf['median_abs_error'])} / "
                     f"{pct(tf['p90_abs_error'])} | {c['k_mem']:.2f}, {c['k_comp']:.2f}, {c['tau_s'] * 1e6:.2f} µs, "
                     f"{pct(c['median_abs_error'])} / {pct(c['p90_abs_error'])} |")
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


def _points_md(points: pd.DataFrame) -> list[str]:
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


def _wall_md(shares: pd.DataFrame) -> list[str]:
    """CUDA: the step's kernel time against the roofline, its wall time against roofline + overhead."""
    if "kernel_s" not in shares:
        return []
    k, w = shares["kernel_s"] / shares["predicted_roofline_s"], shares["wall_s"] / shares["predicted_roofline_overhead_s"]
    return [f"Kernel time / roofline: median {k.median():.2f}x; wall time (kernels + idle, unprofiled median) / "
            f"(roofline + fitted overhead): median {w.median():.2f}x, over {len(shares)} profiled steps.", ""]


def _profile_md(shares: pd.DataFrame, flops: pd.DataFrame) -> list[str]:
    if shares.empty:
        return ["", "## Where the time goes", "", "No profile in this run (`--no-profile`)."]
    lines = ["", "## Where the time goes (torch.profiler, own trajectories)", "",
             f"Compared: {shares['share_basis'].iloc[0]}. Theory's shares are the as-run roofline (with the fitted "
             "per-op overhead spread over its op instances where the measured side includes it). "
             "Inflation = profiled step wall time / unprofiled median.", "", *_wall_md(shares),
             "| point | d | L | attention | phase | step | attention meas/pred | MLP meas/pred | other meas/pred | unattributed | inflation |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for _, r in shares.iterrows():
        lines.append(f"| {r['point_id']} | {r['hidden_size']} | {r['num_hidden_layers']} | {r['attention']} | {r['phase']} | "
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


def write_report(run_dir) -> Path:
    run_dir = Path(run_dir)
    if (run_dir / "comms_fit.json").exists():
        from analysis.comms import comms_report
        return comms_report(run_dir)
    run, df, points, summary, flags, kv, shares, flops = analyse(run_dir)
    (run_dir / "joined.csv").write_text(csv_text(df))
    summary_obj = {phase: {**s, "flags": [f for f in flags if f.get("phase", phase) == phase]}
                   for phase, s in summary.items()}
    summary_obj["run_id"] = run.meta.get("run_id")
    summary_obj["partial"] = run.partial
    summary_obj["flags"] = flags
    if len(run.modes):
        (run_dir / "modes.csv").write_text(csv_text(run.modes))
        summary_obj["modes"] = run.modes.to_dict("records")
        summary_obj["modes_accuracy"] = modes_accuracy(run.modes)     # composed per mode vs its eager twins
    (run_dir / "summary.json").write_text(json_text(summary_obj))
    ops = op_points(run, df) if len(df) else None
    figs = all_figures(df, points, run, run_dir / "figures", shares, ops) if len(df) else {}
    if modes_figure(run.modes, run_dir / "figures" / "modes_vs_width.png"):
        figs["decode step vs width per execution mode"] = str(run_dir / "figures" / "modes_vs_width.png")
    m = run.meta
    skipped = run.rows[run.rows["status"] != "ok"]
    lines = [f"# Run {m.get('run_id')}", "",
             f"{m.get('device_name')} ({m.get('device')}), {m.get('threads')} thread(s); torch {m.get('torch')}, "
             f"transformers {m.get('transformers')}, Python {m.get('python')}; commit {str(m.get('git_commit'))[:10]}"
             f"{' (dirty)' if m.get('git_dirty') else ''}; sweep `{m.get('sweep_name')}`, {m.get('repeats')} repeats, "
             f"{m.get('utc_time')}.", ""]
    lines += summary_md(run, points, summary, flags)
    if run.partial:
        lines += [f"**Partial run**: {run.rows['point_id'].nunique()} of {m.get('points')} points finished "
                  f"(`python -m bench resume {run_dir}` finishes it).", ""]
    lines += ["Time to first token (TTFT) is the prefill; time per output token (TPOT) is the mean decode step. "
              "Predictions are theory's roofline \"as run\" (the cache, attention and logits choices bench recorded) "
              "under this box's measured ceilings; *fitted* adds n_dispatch × τ, the per-op cost fitted below.", "",
              "## Measured ceilings", ""] + _ceilings_md(run)
    lines += noise_md(run, df)
    lines += ["", "## How far from the arithmetic", ""] + _accuracy_md(summary)
    lines += ["", "## Why: flags", ""]
    lines += [f"- **{f['kind']}**: {f['message']}" for f in flags] or ["- none"]
    if len(kv):
        lines += ["", "## KV-cache memory per token", "",
                  "| point | cache | naive bf16 4·L·d (B/token) | theory (B/token) | tensors (B/token) | allocated peak (B/token) | "
                  "reserved (B/token) | peak RSS (B/token) |", "|---|---|---|---|---|---|---|---|"]
        fmt = lambda v: "" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.0f}"
        for _, r in kv.iterrows():
            lines.append(f"| {r['point_id']} | {r['cache']} | {fmt(r['naive_bf16_mha_bytes_per_token'])} | "
                         f"{fmt(r['theory_bytes_per_token'])} | {fmt(r['tensor_bytes_per_token'])} | "
                         f"{fmt(r['allocated_peak_bytes_per_token'])} | {fmt(r['reserved_bytes_per_token'])} | "
                         f"{fmt(r['rss_peak_bytes_per_token'])} |")
    from analysis.kvalloc import kv_allocator_section        # the allocator replay of each point's trace
    lines += kv_allocator_section(run_dir, run.rows)
    explain_lines, explain_figs = explain_section(run, df, summary, run_dir / "figures")
    lines += explain_lines
    figs = {**figs, **explain_figs}
    lines += modes_md(run.modes, summary.get("decode", {}).get("tau_s") or 0.0, ceil_overhead_s(run))
    lines += _profile_md(shares, flops)
    lines += ["", "## Points", "", "Throughput: prefill tokens/s = batch × prompt tokens / prefill time; decode "
              "tokens/s = batch × 1 token / mean decode step time (both measured medians).", ""]
    lines += _points_md(points) if len(points) else ["no finished point"]
    if len(skipped):
        lines += ["", "## Not measured", ""] + [f"- {point_name(r)} (`{r['point_id']}`): {r['status']} ({r['message']})"
                                                for _, r in skipped.iterrows()]
    lines += ["", "## Figures", ""] + [f"### {k}\n\n![{k}]({Path(v).relative_to(run_dir)})\n" for k, v in figs.items()]
    lines += ["", "Files: `measurements.csv` (one row per point × phase × step), `samples.csv` (every timed sample, "
              "repeat −1 = cold), `joined.csv` (each row with its predictions and ratios), `summary.json`, `run.json`."]
    out = run_dir / "report.md"
    out.write_text(no_negative_zero("\n".join(lines) + "\n"))
    return out
