"""One figure per point class (analysis/classes.py): a stacked bar per point, from the roofline through
the kernel gap and the framework to the residual; the top of each bar is the measured time."""
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from analysis.decompose import LEVELS  # noqa: E402
from analysis.names import point_name  # noqa: E402

LABELS = {"roofline_s": "roofline (theory, measured ceilings)", "kernel_gap_s": "kernel gap (ops timed alone)",
          "framework_gap_s": "framework (module path, tiny shapes)", "residual_s": "residual (in the model)"}
COLORS = {"roofline_s": "#4c72b0", "kernel_gap_s": "#dd8452", "framework_gap_s": "#55a868", "residual_s": "#c44e52"}


def decomposition_figures(df, pts, run_id: str, out_dir: Path) -> dict[str, str]:
    """One figure per point class (analysis/classes.py), a bar per point on its representative row (middle
    decode step; the prefill)."""
    d = df[df["composed_time_s"].notna()]
    if d.empty or pts.empty:
        return {}
    reps = [g.sort_values("step").iloc[len(g) // 2] for _, g in d.groupby(["point_id", "phase"], sort=False)]
    import pandas as pd
    reps = pd.DataFrame(reps).merge(pts[["point_id", "phase", "point_class"]], on=["point_id", "phase"])
    figs = {}
    for cls, g in reps.groupby("point_class", sort=True):
        g = g.sort_values(["hidden_size", "num_hidden_layers", "batch", "prompt_len", "point_id"])
        fig, ax = plt.subplots(figsize=(9, 0.45 * len(g) + 1.8))
        y = range(len(g))
        pos = [0.0] * len(g)
        neg = [0.0] * len(g)
        for lev in LEVELS:
            vals = (g[lev] * 1e3).tolist()
            left = [p if v >= 0 else n for v, p, n in zip(vals, pos, neg)]
            ax.barh(list(y), vals, left=left, color=COLORS[lev], label=LABELS[lev])
            pos = [p + v if v >= 0 else p for v, p in zip(vals, pos)]
            neg = [n + v if v < 0 else n for v, n in zip(vals, neg)]
        ax.plot((g["measured_time_s"] * 1e3).tolist(), list(y), "k|", markersize=14, label="measured")
        ax.set_yticks(list(y), [point_name(r) for _, r in g.iterrows()])
        ax.set_xlabel("time per pass (ms)")
        ax.set_title(f"{cls}: where the time goes per point (ms) — run {run_id}", fontsize=9)
        ax.legend(fontsize=7, loc="lower right")
        fig.tight_layout()
        phase, rest = cls.split(", ", 1)
        slug = re.sub(r"[^a-z0-9]+", "-", rest.replace("<", "lt").replace(">", "gt").replace("=", "eq")).strip("-")
        path = out_dir / f"decomposition_{phase}_{slug}.png"
        fig.savefig(path, dpi=110, metadata={"Software": None})
        plt.close(fig)
        figs[f"{cls}: per point (time per pass, ms)"] = str(path)
    return figs
