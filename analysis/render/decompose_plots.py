"""One figure per point class (phase × attention × cache): a stacked bar per point, from the roofline through
the kernel gap and the framework to the residual; the top of each bar is the measured time."""
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from analysis.decompose import LEVELS  # noqa: E402

LABELS = {"roofline_s": "roofline (theory, measured ceilings)", "kernel_gap_s": "kernel gap (ops timed alone)",
          "framework_gap_s": "framework (module path, tiny shapes)", "residual_s": "residual (in the model)"}
COLORS = {"roofline_s": "#4c72b0", "kernel_gap_s": "#dd8452", "framework_gap_s": "#55a868", "residual_s": "#c44e52"}


def _label(r) -> str:
    return (f"d{int(r['hidden_size'])} L{int(r['num_hidden_layers'])} hd{int(r['head_dim'])} "
            f"kv{int(r['num_key_value_heads'])}/{int(r['num_attention_heads'])} V{int(r['vocab_size'])} "
            f"b{int(r['batch'])} T{int(r['prompt_len'])}")


def decomposition_figures(df, out_dir: Path) -> dict[str, str]:
    """Uses each point's representative row (middle decode step; the prefill)."""
    d = df[df["composed_time_s"].notna()]
    if d.empty:
        return {}
    reps = [g.sort_values("step").iloc[len(g) // 2] for _, g in d.groupby(["point_id", "phase"], sort=False)]
    import pandas as pd
    reps = pd.DataFrame(reps)
    figs = {}
    for (phase, attn, cache), g in reps.groupby(["phase", "attention", "cache"], sort=True):
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
        ax.set_yticks(list(y), [_label(r) for _, r in g.iterrows()])
        ax.set_xlabel("time per pass (ms)")
        ax.set_title(f"{phase}, {attn}, {cache} cache: where the time goes")
        ax.legend(fontsize=7, loc="lower right")
        fig.tight_layout()
        name = f"decomposition_{phase}_{attn}_{cache}"
        path = out_dir / f"{name}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        figs[name] = str(path)
    return figs
