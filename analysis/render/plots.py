"""Figures (PNG), each rebuilt from the run directory alone. Every axis states its unit."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from analysis.flags import sweeps_along  # noqa: E402
from analysis.names import point_name  # noqa: E402


def _save(fig, path):
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata={"Software": None})   # no version stamp: same bytes on rerun
    plt.close(fig)
    return path


def _sweep_plot(points: pd.DataFrame, axis: str, label: str, path) -> str | None:
    groups = sweeps_along(points, axis)
    if not groups:
        return None
    g = groups[0]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    x = g[axis].to_numpy()
    for ax, phase, title in ((axes[0], "prefill", "prefill (time to first token)"),
                             (axes[1], "decode", "mean decode step (time per output token)")):
        m = g[f"{phase}_measured_time_s"].to_numpy() * 1e3
        lo = m - g[f"{phase}_time_p10_s"].to_numpy() * 1e3
        hi = g[f"{phase}_time_p90_s"].to_numpy() * 1e3 - m
        ax.errorbar(x, m, yerr=[np.maximum(lo, 0), np.maximum(hi, 0)], fmt="o", label="measured (median, p10-p90)")
        ax.plot(x, g[f"{phase}_predicted_time_s_ceilings"] * 1e3, "-", label="roofline, measured ceilings")
        ax.plot(x, g[f"{phase}_predicted_time_s_fitted"] * 1e3, "--", label="ceilings + fitted per-op overhead")
        ax.plot(x, g[f"{phase}_predicted_time_s_calibrated"] * 1e3, "-.", label="calibrated (k_mem, k_comp, τ)")
        if g[f"{phase}_predicted_time_s_datasheet"].notna().any():
            ax.plot(x, g[f"{phase}_predicted_time_s_datasheet"] * 1e3, ":", label="roofline, datasheet")
        ax.set_xlabel(label)
        ax.set_ylabel("time (ms)")
        ax.set_title(title)
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    return _save(fig, path)


def time_vs_tokens(df: pd.DataFrame, path) -> str | None:
    dec = df[df["phase"] == "decode"]
    if dec.empty:
        return None
    pid = dec.groupby("point_id").size().idxmax()
    g = dec[dec["point_id"] == pid].sort_values("context_len")
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(g["context_len"], g["measured_time_s"] * 1e3, ".", label="measured (median)")
    ax.plot(g["context_len"], g["predicted_time_s_fitted"] * 1e3, "-", label="as run + fitted overhead")
    ax.plot(g["context_len"], (g["predicted_time_s_ceilings_ideal"] + g["predicted_time_s_fitted"]
                               - g["predicted_time_s_ceilings"]) * 1e3, ":", label="ideal (append) + fitted overhead")
    r0 = g.iloc[0]
    ax.set_title(f"decode step vs context: {point_name(r0)} ({r0['cache']} cache)")
    ax.set_xlabel("context_len (tokens in cache before the step)")
    ax.set_ylabel("decode step time (ms)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def memory_vs_tokens(df: pd.DataFrame, path) -> str | None:
    dec = df[(df["phase"] == "decode") & (df["cache"] == "dynamic")]
    if dec.empty:
        return None
    pid = dec.groupby("point_id").size().idxmax()
    g = dec[dec["point_id"] == pid].sort_values("context_len")
    tokens = g["context_len"] + 1
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(tokens, g["kv_cache_bytes"] / 1e6, "o", ms=3, label="KV cache tensors (measured)")
    ax.plot(tokens, g["kv_cache_bytes_theory"] / 1e6, "-", label="theory")
    for col, label in (("mem_reserved_peak_total_bytes", "CUDA reserved (peak)"),
                       ("mem_allocated_peak_total_bytes", "CUDA allocated (peak)"),
                       ("rss_peak_bytes", "CPU peak RSS (incl. allocator retention)")):
        if col in g and g[col].notna().any():
            base = g[col].iloc[0] - g["kv_cache_bytes"].iloc[0]
            ax.step(tokens, (g[col] - base) / 1e6, where="post", label=f"{label}, offset to the cache at step 0")
    ax.set_xlabel("tokens in cache after the step")
    ax.set_ylabel("memory (MB)")
    ax.set_title(f"KV-cache memory vs tokens: {point_name(g.iloc[0])}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def roofline(df: pd.DataFrame, ceilings, path, ops: pd.DataFrame | None = None) -> str | None:
    """Whole passes, and (when profiled) each op, placed by theory's intensity and the achieved rate."""
    if ceilings is None or df.empty:
        return None
    dtype = df["dtype"].iloc[0]
    peak, bw = ceilings.peak(dtype), ceilings.memory_bandwidth_bytes_per_s
    ai = df["predicted_flops"] / df["predicted_bytes"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    lo, hi = ai.min(), ai.max()
    if ops is not None and len(ops):
        lo, hi = min(lo, ops["intensity_flops_per_byte"].min()), max(hi, ops["intensity_flops_per_byte"].max())
        for group, marker in (("attention", "^"), ("mlp", "v"), ("other", "x")):
            g = ops[ops["group"] == group]
            ax.scatter(g["intensity_flops_per_byte"], g["achieved_flops_per_s"] / 1e9, marker=marker, s=10,
                       alpha=0.35, label=f"profiled ops: {group}")
    xs = np.logspace(np.log10(max(lo / 2, 1e-3)), np.log10(hi * 4), 100)
    ax.plot(xs, np.minimum(peak, xs * bw) / 1e9, "k-", label="roofline (measured ceilings)")
    if ceilings.llc_bandwidth_bytes_per_s:
        ax.plot(xs, np.minimum(peak, xs * ceilings.llc_bandwidth_bytes_per_s) / 1e9, "k:", label="in-cache bandwidth")
    for phase, marker in (("prefill", "s"), ("decode", "o")):
        sel = df["phase"] == phase
        ax.scatter(ai[sel], df.loc[sel, "achieved_flops_per_s"] / 1e9, marker=marker, s=12, alpha=0.6, label=phase)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (FLOP/byte, theory's counts)")
    ax.set_ylabel("achieved (GFLOP/s)")
    ax.set_title("passes (and profiled ops) on the roofline")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return _save(fig, path)


def error_distribution(df: pd.DataFrame, path) -> str | None:
    if df.empty:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    before = np.log10(df["measured_time_s"] / df["predicted_time_s_ceilings"])
    after = np.log10(df["measured_time_s"] / df["predicted_time_s_heldout"]).dropna()
    bins = np.linspace(min(before.min(), after.min() if len(after) else 0) - 0.05, before.max() + 0.05, 40)
    ax.hist(before, bins=bins, alpha=0.6, label="roofline only")
    ax.hist(after, bins=bins, alpha=0.6, label="+ fitted overhead (held out)")
    ax.axvline(0, color="k", lw=1)
    ax.set_xlabel("log10(measured / predicted)")
    ax.set_ylabel("rows (count)")
    ax.set_title("prediction error")
    ax.legend(fontsize=8)
    return _save(fig, path)


def breakdown(table: pd.DataFrame, path) -> str | None:
    """Attention / MLP / other shares per phase (mean over profiled steps), measured beside theory's."""
    if table is None or table.empty:
        return None
    groups = ["attention", "mlp", "other", "unattributed"]
    fig, ax = plt.subplots(figsize=(7, 4))
    labels, bottoms = [], []
    bars = []
    for phase in ("prefill", "decode"):
        t = table[table["phase"] == phase]
        if t.empty:
            continue
        for kind in ("measured", "predicted"):
            labels.append(f"{phase}\n{kind}")
            bars.append([t[f"{kind}_share_{g}"].mean() for g in groups])
    bars = np.array(bars)
    bottom = np.zeros(len(labels))
    for i, g in enumerate(groups):
        ax.bar(labels, bars[:, i], bottom=bottom, label=g)
        bottom += bars[:, i]
    ax.set_ylabel("share of step time (fraction)")
    ax.set_title("where a step's time goes: profiler vs theory (+ fitted overhead)")
    ax.legend(fontsize=8)
    return _save(fig, path)


def all_figures(df, points, run, out_dir, breakdown_table=None, ops=None) -> dict[str, str]:
    out_dir.mkdir(exist_ok=True)
    dtype = df["dtype"].iloc[0] if len(df) else "fp32"
    figs = {
        "time vs width (ms, log)": _sweep_plot(points, "hidden_size", "hidden_size (width)", out_dir / "time_vs_width.png"),
        "time vs depth (ms, log)": _sweep_plot(points, "num_hidden_layers", "num_hidden_layers (depth)", out_dir / "time_vs_depth.png"),
        "time vs batch (ms, log)": _sweep_plot(points, "batch", "batch (sequences)", out_dir / "time_vs_batch.png"),
        "decode step vs context, with the fits (ms)": time_vs_tokens(df, out_dir / "time_vs_tokens.png"),
        "memory vs tokens (bytes)": memory_vs_tokens(df, out_dir / "memory_vs_tokens.png"),
        "roofline (FLOP/s against FLOP/byte)": roofline(df, run.ceilings(dtype), out_dir / "roofline.png", ops),
        "error distribution (measured / predicted)": error_distribution(df, out_dir / "error_distribution.png"),
        "attention / MLP / other breakdown (share of profiled time)": breakdown(breakdown_table, out_dir / "breakdown.png"),
    }
    return {k: str(v) for k, v in figs.items() if v is not None}
