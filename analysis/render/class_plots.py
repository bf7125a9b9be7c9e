"""Figures of the measured decomposition: one stacked bar per point class (roofline, the kernel gap by its top
ops, framework, residual; whiskers = the 95% interval of each median share), and measured vs composed vs
roofline over width and over context. Every title carries its unit and the run id."""
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from analysis.flags import sweeps_along  # noqa: E402

COLORS = {"roofline": "#4c72b0", "kernel_gap": "#dd8452", "framework": "#55a868", "residual": "#c44e52"}
OP_SHADES = ["#f0b27a", "#e59866", "#ca6f1e"]


def _save(fig, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)
    return str(path)


def class_bars(classes: pd.DataFrame, run_id: str, path: Path) -> str | None:
    if classes.empty:
        return None
    fig, ax = plt.subplots(figsize=(10, 0.7 * len(classes) + 2.2))
    y = np.arange(len(classes))
    left = np.zeros(len(classes))
    labelled = set()
    for piece in ("roofline", "kernel_gap", "framework", "residual"):
        med = classes[f"{piece}_share"].to_numpy(float)
        if piece == "kernel_gap":                        # split by the class's top ops, the rest as one segment
            start = left.copy()
            rest = med.copy()
            for k in range(3):
                v = np.array([c[k]["gap_share"] if len(c) > k else 0.0 for c in classes["top_ops"]])
                v = np.minimum(v, np.maximum(rest, 0))
                ax.barh(y, v, left=left, color=OP_SHADES[k], edgecolor="white", linewidth=0.5)
                for i, c in enumerate(classes["top_ops"]):
                    if len(c) > k and v[i] > 0.04:
                        ax.text(left[i] + v[i] / 2, y[i], c[k]["op"], ha="center", va="center", fontsize=6)
                left, rest = left + v, rest - v
            ax.barh(y, rest, left=left, color=COLORS[piece], label="kernel gap (top ops shaded, then the rest)")
            left = start + med
        else:
            ax.barh(y, med, left=left, color=COLORS[piece], label={"roofline": "roofline", "framework": "framework",
                                                                    "residual": "residual"}[piece])
            left = left + med
        lo, hi = classes[f"{piece}_share_low"].to_numpy(float), classes[f"{piece}_share_high"].to_numpy(float)
        ax.errorbar(left, y + {"roofline": -0.3, "kernel_gap": -0.1, "framework": 0.1, "residual": 0.3}[piece],
                    xerr=[np.maximum(med - lo, 0), np.maximum(hi - med, 0)], fmt="none", ecolor="black",
                    elinewidth=0.8, capsize=2, label=None if labelled else "95% interval of each median share")
        labelled.add(piece)
    ax.axvline(1.0, color="grey", linestyle=":", linewidth=0.8)
    ax.set_yticks(y, [f"{c} ({n})" for c, n in zip(classes["point_class"], classes["points"])])
    ax.invert_yaxis()
    ax.set_xlabel("share of measured time (median over the class's points; 1 = measured)")
    ax.set_title(f"where the time goes, per point class — run {run_id}", fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    return _save(fig, path)


def composed_vs_width(pts: pd.DataFrame, run_id: str, path: Path) -> str | None:
    """Per phase: measured (95% interval), composed (its interval) and the roofline over the width sweep."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    drawn = False
    for ax, phase in zip(axes, ("prefill", "decode")):
        groups = sweeps_along(_axis_frame(pts[pts["phase"] == phase]), "hidden_size")
        if not groups:
            continue
        g = groups[0]
        x = g["hidden_size"].to_numpy(float)
        rows = g["rows"].to_numpy(float)
        per = lambda col: g[col].to_numpy(float) / rows * 1e3
        m = per("measured_time_s")
        ax.errorbar(x, m, yerr=[np.maximum(m - per("time_ci_low_s"), 0), np.maximum(per("time_ci_high_s") - m, 0)],
                    fmt="o", color="black", capsize=2, label="measured (median, 95% interval)")
        c = per("composed_time_s")
        ax.plot(x, c, "-", color="#dd8452", label="composed (kernels alone + framework)")
        ax.fill_between(x, per("composed_ci_low_s"), per("composed_ci_high_s"), color="#dd8452", alpha=0.25)
        ax.plot(x, per("roofline_s"), "--", color="#4c72b0", label="roofline (measured ceilings)")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("hidden_size (width)")
        ax.set_ylabel("time per pass (ms)" if phase == "prefill" else "mean decode step (ms)")
        ax.set_title(f"{phase}: measured vs composed vs roofline", fontsize=9)
        ax.grid(alpha=0.3)
        drawn = True
    if not drawn:
        plt.close(fig)
        return None
    axes[0].legend(fontsize=7)
    fig.suptitle(f"over width — run {run_id}", fontsize=10)
    return _save(fig, path)


def _axis_frame(p: pd.DataFrame) -> pd.DataFrame:
    """The point table with the shape columns sweeps_along groups on (missing ones filled constant)."""
    from analysis.flags import SHAPE_KEYS
    out = p.copy()
    for k in SHAPE_KEYS:
        if k not in out:
            out[k] = 0
    return out


def composed_vs_context(df: pd.DataFrame, run_id: str, path: Path) -> str | None:
    """The longest decode trajectory of each cache kind: per step, measured (95% interval), composed, roofline."""
    dec = df[(df["phase"] == "decode") & df["composed_time_s"].notna()]
    if dec.empty:
        return None
    picks = []
    for cache, g in dec.groupby("cache", sort=True):
        n = g.groupby("point_id").size()
        picks.append(sorted(n[n == n.max()].index)[0])
    fig, axes = plt.subplots(1, len(picks), figsize=(5.5 * len(picks), 4), squeeze=False)
    for ax, pid in zip(axes[0], picks):
        g = dec[dec["point_id"] == pid].sort_values("context_len")
        x = g["context_len"].to_numpy(float)
        m = g["measured_time_s"].to_numpy(float) * 1e3
        ax.fill_between(x, g["time_ci_low_s"] * 1e3, g["time_ci_high_s"] * 1e3, color="grey", alpha=0.3,
                        label="measured 95% interval")
        ax.plot(x, m, ".", color="black", markersize=3, label="measured (median)")
        ax.plot(x, g["composed_time_s"] * 1e3, "-", color="#dd8452", label="composed")
        ax.plot(x, g["roofline_s"] * 1e3, "--", color="#4c72b0", label="roofline (as run)")
        from analysis.names import point_name
        ax.set_title(f"{point_name(g.iloc[0])}, {g.iloc[0]['cache']} cache", fontsize=9)
        ax.set_xlabel("context_len (tokens in the cache before the step)")
        ax.set_ylabel("decode step (ms)")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"over context — run {run_id}", fontsize=10)
    return _save(fig, path)
