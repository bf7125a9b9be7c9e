"""Execution modes side by side: each compiled point against the eager point that differs only in its mode.

Per pair (decode, time per output token = the mean decode step of a trajectory):
- speedup eager/mode with a bootstrap 95% interval over the repeats of each (fixed seed: same bytes each run);
- compile time (kept apart from timed steps) and recompilations during timing (a point that recompiled is
  flagged `recompiled` by bench and never reaches this table as ok);
- theory per mode: the roofline of the op table as the mode runs it (theory.modes) plus the mode's own
  framework cost: eager's n_dispatch × τ (τ fitted on eager points only), a compiled graph's counted kernels ×
  the per-op cost measured directly by the ceilings (nothing fitted on compiled points), one launch for CUDA graphs;
- the per-op floor eager pays (n_dispatch × τ) and the fraction of it the mode removed; what remains above
  the mode's roofline;
- composed per mode, as eager is composed (analysis.compose), nothing fitted: the extern kernels (matmuls,
  attention) timed alone at the point's shapes, plus the generated kernels' fused traffic (theory.modes) at the
  box's measured copy bandwidth, plus the mode's framework cost measured on a tiny compiled model of the same
  structure (bench/kernels/compiled.py); its error beside the eager twin's composed error;
- the compiled decode step's profile (bench/profiling/compiled.py): the largest ops and fused groups and their shares.
"""
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.compose import add_composed
from analysis.fit import last_cache_bytes
from analysis.join import row_workloads
from theory.hfconfig import from_hf_config
from theory.modes import compiled_kernels, generated_ops

POINT_KEY = ["hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim",
             "intermediate_size", "vocab_size", "model", "dtype", "batch", "prompt_len", "generated",
             "attention", "cache"]
BOOTSTRAP = 2000


def trajectory_tpot_s(samples: pd.DataFrame, point_id: str) -> np.ndarray:
    """Mean decode step of each timed repeat (cold excluded)."""
    s = samples[(samples["point_id"] == point_id) & (samples["phase"] == "decode") & (samples["repeat"] >= 0)]
    return s.groupby("repeat")["time_s"].mean().to_numpy()


def speedup_interval(eager: np.ndarray, mode: np.ndarray, seed: int = 0) -> tuple[float, float, float]:
    """Ratio of mean TPOTs and its percentile bootstrap 95% interval (repeats resampled within each side)."""
    if len(eager) == 0 or len(mode) == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    e = rng.choice(eager, (BOOTSTRAP, len(eager))).mean(axis=1)
    m = rng.choice(mode, (BOOTSTRAP, len(mode))).mean(axis=1)
    r = e / m
    return float(eager.mean() / mode.mean()), float(np.quantile(r, 0.025)), float(np.quantile(r, 0.975))


def copy_bandwidth(meta: dict, dtype: str, working_set_bytes: float) -> float | None:
    """bench.ceilings' copy bandwidth (bytes read + written per second): measured well inside the last-level
    cache for a working set that fits it, far outside it (DRAM) otherwise."""
    det = meta.get("ceilings_detail", {}).get(dtype, {})
    llc = last_cache_bytes(meta, dtype)
    fits = llc is not None and working_set_bytes <= llc
    return det.get("copy_bytes_per_s_in_cache" if fits else "copy_bytes_per_s_dram") or None


def generated_s(r, meta: dict) -> float:
    """Theory's traffic of the ops inside Inductor's generated kernels (fused as the mode runs them), each op's
    instance at the copy bandwidth its working set gets."""
    spec = from_hf_config({k: int(r[k]) for k in POINT_KEY[:7]}, "row")
    total = 0.0
    for op in generated_ops(spec, row_workloads(r)[0], r["execution"]):
        bw = copy_bandwidth(meta, r["dtype"], op.bytes / max(op.count, 1))
        if bw is None:
            return float("nan")
        total += op.bytes / bw
    return total


def composed_decode(dec: pd.DataFrame, run) -> pd.DataFrame:
    """Composed time per decode row (index as dec) and its parts: eager, Σ kernels + framework; compiled, the
    extern kernels + the generated kernels' traffic + the compiled framework. NaN where a part was not measured."""
    cols = ["composed_s", "kernels_part_s", "generated_part_s", "framework_part_s"]
    if run is None or not (Path(run.path) / "compose.csv").exists():
        return pd.DataFrame(float("nan"), index=dec.index, columns=cols)
    c = add_composed(dec.reset_index(drop=True), Path(run.path))
    gen = pd.Series([0.0 if r["execution"] == "eager" else generated_s(r, run.meta) for _, r in c.iterrows()])
    parts = [c["kernels_s"] + c["framework_s"] + gen, c["kernels_s"], gen, c["framework_s"]]
    return pd.DataFrame({k: v.to_numpy() for k, v in zip(cols, parts)}, index=dec.index)


def profile_top(profile: pd.DataFrame | None, point_id: str, n: int = 5) -> str:
    """The compiled decode step's largest profiled ops and fused groups, mean share over its profiled steps."""
    if profile is None or profile.empty:
        return ""
    g = profile[(profile["point_id"].astype(str) == point_id) & (profile["phase"] == "decode")]
    if g.empty:
        return ""
    share = (g.groupby("op")["share"].sum() / g["step"].nunique()).sort_values(ascending=False, kind="mergesort")
    text = ", ".join(f"{op} {v:.0%}" for op, v in share.head(n).items())
    fused = share[share.index.str.startswith("fused(")]
    if len(fused):
        text += (f"; fused groups {fused.sum():.1%} in {len(fused)}, largest "
                 + ", ".join(f"{op} {v:.1%}" for op, v in fused.head(2).items()))
    return text


def modes_table(df: pd.DataFrame, samples: pd.DataFrame, tau_eager_s: float, op_overhead_s: float,
                run=None) -> pd.DataFrame:
    """One row per point run in a non-eager mode that has an eager twin; empty when there is none."""
    dec = df[df["phase"] == "decode"]
    if "execution" not in dec or (dec["execution"] == "eager").all():
        return pd.DataFrame()
    dec = pd.concat([dec, composed_decode(dec, run)], axis=1)
    per_point = dec.groupby("point_id").agg(
        **{k: (k, "first") for k in POINT_KEY + ["execution", "compile_s", "recompiles_timed"]
           + [c for c in ("cudagraph_skips",) if c in dec]},
        measured_s=("measured_time_s", "mean"), roofline_s=("predicted_time_s_ceilings", "mean"),
        **{k: (k, lambda x: x.mean(skipna=False)) for k in ("composed_s", "kernels_part_s", "generated_part_s",
                                                              "framework_part_s")},
        n_dispatch=("n_dispatch", "first")).reset_index()
    eager = per_point[per_point["execution"] == "eager"].set_index(POINT_KEY)
    out = []
    for _, r in per_point[per_point["execution"] != "eager"].iterrows():
        key = tuple(r[k] for k in POINT_KEY)
        if key not in eager.index:
            continue
        e = eager.loc[key]
        e = e.iloc[0] if isinstance(e, pd.DataFrame) else e
        spd, lo, hi = speedup_interval(trajectory_tpot_s(samples, e["point_id"]), trajectory_tpot_s(samples, r["point_id"]))
        spec = from_hf_config({k: int(r[k]) for k in POINT_KEY[:7]}, "row")
        # One launch only for graphs that were replayed: bench flags a point whose graphs Inductor skipped
        # (status cudagraph_skipped, never ok), and an older run's row without the count is taken at its word.
        skipped = pd.notna(r.get("cudagraph_skips")) and r.get("cudagraph_skips", 0) > 0
        launches = 1 if r["execution"] == "cudagraphs" and not skipped else int(r["n_dispatch"])
        floor_s = int(e["n_dispatch"]) * tau_eager_s
        predicted_s = r["roofline_s"] + launches * op_overhead_s
        out.append({
            "hidden_size": int(r["hidden_size"]), "num_hidden_layers": int(r["num_hidden_layers"]),
            "cache": r["cache"], "execution": r["execution"], "eager_point_id": e["point_id"], "point_id": r["point_id"],
            "eager_tpot_s": e["measured_s"], "tpot_s": r["measured_s"], "speedup": spd, "speedup_lo": lo, "speedup_hi": hi,
            "compile_s": r["compile_s"], "recompiles_timed": r["recompiles_timed"],
            "n_dispatch_eager": int(e["n_dispatch"]), "n_dispatch": int(r["n_dispatch"]),
            "kernels_theory": compiled_kernels(spec, r["execution"]),
            "roofline_s": r["roofline_s"], "eager_roofline_s": e["roofline_s"],
            "eager_predicted_s": e["roofline_s"] + floor_s, "predicted_s": predicted_s,
            "eager_error": e["measured_s"] / (e["roofline_s"] + floor_s) - 1, "error": r["measured_s"] / predicted_s - 1,
            "eager_floor_s": floor_s, "floor_removed": (e["measured_s"] - r["measured_s"]) / floor_s if floor_s else float("nan"),
            "remaining_above_roofline_s": r["measured_s"] - r["roofline_s"],
            "composed_s": r["composed_s"], "composed_error": r["measured_s"] / r["composed_s"] - 1,
            "composed_externs_s": r["kernels_part_s"], "composed_generated_s": r["generated_part_s"],
            "composed_framework_s": r["framework_part_s"],
            "eager_composed_s": e["composed_s"], "eager_composed_error": e["measured_s"] / e["composed_s"] - 1,
            "profile_top": profile_top(getattr(run, "profile", None), r["point_id"]),
        })
    return pd.DataFrame(out).sort_values(["execution", "num_hidden_layers", "hidden_size"]).reset_index(drop=True) if out else pd.DataFrame()


def modes_md(t: pd.DataFrame, tau_eager_s: float, op_overhead_s: float) -> list[str]:
    if t.empty:
        return []
    f = lambda x: "" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x * 1e3:.3f}"
    fe = lambda r, k: "" if not _num(r.get(f"{k}_s")) else f"{f(r[f'{k}_s'])}, {r[f'{k}_error']:+.0%}"
    lines = ["", "## Execution modes (decode, time per output token)", "",
             f"Each mode against the eager point that differs only in its mode. Speedup = eager / mode TPOT with a "
             f"bootstrap 95% interval over repeats. Theory per mode = the mode's roofline (fusion's saved traffic "
             f"included) + its framework cost: eager n_dispatch × τ = {tau_eager_s * 1e6:.2f} µs (fitted on eager "
             f"decode points only); compiled: the graph's counted kernels × the per-op cost the ceilings measured "
             f"directly, {op_overhead_s * 1e6:.2f} µs (nothing fitted on compiled points); CUDA graphs: one launch. "
             "The per-op floor is eager's n_dispatch × τ; *removed* is (eager − mode) / floor.", "",
             "| d | L | cache | mode | eager (ms) | mode (ms) | speedup [95% CI] | compile (s) | recompiles in timing | "
             "ops eager → mode (theory) | mode predicted (ms), error | eager predicted, error | mode composed (ms), "
             "error | eager composed (ms), error | floor removed | left above the roofline (ms) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for _, r in t.iterrows():
        kt = "" if r["kernels_theory"] is None else f" ({r['kernels_theory']})"
        lines.append(f"| {r['hidden_size']} | {r['num_hidden_layers']} | {r['cache']} | {r['execution']} | "
                     f"{f(r['eager_tpot_s'])} | {f(r['tpot_s'])} | {r['speedup']:.2f}x [{r['speedup_lo']:.2f}, "
                     f"{r['speedup_hi']:.2f}] | {r['compile_s']:.1f} | {int(r['recompiles_timed'])} | "
                     f"{r['n_dispatch_eager']} → {r['n_dispatch']}{kt} | {f(r['predicted_s'])}, {r['error']:+.0%} | "
                     f"{f(r['eager_predicted_s'])}, {r['eager_error']:+.0%} | {fe(r, 'composed')} | "
                     f"{fe(r, 'eager_composed')} | {r['floor_removed']:.0%} | "
                     f"{f(r['remaining_above_roofline_s'])} |")
    lines.append("")
    for _, r in t.iterrows():
        rest = r["tpot_s"] - r["roofline_s"]
        lines.append(f"- {r['execution']} removes {r['floor_removed']:.0%} of eager's per-op floor at d={r['hidden_size']} "
                     f"L={r['num_hidden_layers']} ({f(r['eager_floor_s'])} ms over {r['n_dispatch_eager']} ops); the rest: "
                     f"{f(rest)} ms above its roofline of {f(r['roofline_s'])} ms for {r['n_dispatch']} launches "
                     f"({rest / max(r['n_dispatch'], 1) * 1e6:.1f} µs each if it were all per-launch cost).")
    lines += _composed_md(t)
    return lines


def _num(x) -> bool:
    return x is not None and not (isinstance(x, float) and np.isnan(x))


def modes_accuracy(t: pd.DataFrame) -> dict:
    """Per mode: |measured/composed − 1| over its points (median, max) beside the same for their eager twins;
    within_eager when neither the median nor the max is worse than the twins'."""
    out = {}
    if t.empty or "composed_error" not in t:
        return out
    for mode, g in t.groupby("execution"):
        g = g[g["composed_error"].notna() & g["eager_composed_error"].notna()]
        if g.empty:
            continue
        m, e = g["composed_error"].abs(), g["eager_composed_error"].abs()
        out[mode] = {"points": int(len(g)), "median_abs_error": float(m.median()), "max_abs_error": float(m.max()),
                     "eager_median_abs_error": float(e.median()), "eager_max_abs_error": float(e.max()),
                     "within_eager": bool(m.median() <= e.median() and m.max() <= e.max())}
    return out


def _composed_md(t: pd.DataFrame) -> list[str]:
    lines = ["", "**Composed per mode** (nothing fitted, as eager is composed): the extern kernels (matmuls, "
             "attention) timed alone at the point's shapes + the generated kernels' fused traffic (theory) at the "
             "measured copy bandwidth + the mode's framework cost measured on a tiny compiled model of the same "
             "structure (`framework.csv`)."]
    acc = modes_accuracy(t)
    if not acc:
        lines.append("No kernel table for these points (`--no-kernels`, or a run before compiled points were "
                     "composed): no composed prediction per mode.")
    for mode, a in acc.items():
        verdict = ("within the accuracy its eager twins reach" if a["within_eager"] else
                   "it still misses by more than its eager twins do")
        lines.append(f"- {mode}: |measured/composed − 1| median {a['median_abs_error']:.1%}, max "
                     f"{a['max_abs_error']:.1%} over {a['points']} point(s); eager twins {a['eager_median_abs_error']:.1%}"
                     f", max {a['eager_max_abs_error']:.1%}: {verdict}.")
    for _, r in t.iterrows():
        if _num(r.get("composed_s")):
            lines.append(f"  - {r['execution']} d={r['hidden_size']} L={r['num_hidden_layers']}: composed "
                         f"{r['composed_s'] * 1e3:.3f} ms = extern kernels {r['composed_externs_s'] * 1e3:.3f} + fused "
                         f"traffic {r['composed_generated_s'] * 1e3:.3f} + framework {r['composed_framework_s'] * 1e3:.3f}"
                         f" ms (theory per mode above: roofline {r['roofline_s'] * 1e3:.3f} + "
                         f"{r['n_dispatch']} × per-op cost); measured {r['tpot_s'] * 1e3:.3f} ms.")
    tops = [(r, r["profile_top"]) for _, r in t.iterrows() if isinstance(r.get("profile_top"), str) and r["profile_top"]]
    if tops:
        lines += ["", "**Compiled decode step, profiled** (profile.csv; self time per theory op or fused group "
                  "`fused(a+b)` named by its members; `framework` = guards, the compiled region and the graph's "
                  "Python; mean share over the profiled decode steps):"]
        lines += [f"- {r['execution']} d={r['hidden_size']} L={r['num_hidden_layers']}: {top}" for r, top in tops]
    return lines


def modes_figure(t: pd.DataFrame, path) -> str | None:
    """Decode step vs width for each mode (measured, with the bootstrap interval of the mean), beside the roofline."""
    if t.empty or t["hidden_size"].nunique() < 2:
        return None
    import matplotlib.pyplot as plt
    depth = t["num_hidden_layers"].mode().iloc[0]
    t = t[t["num_hidden_layers"] == depth]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    eager = t.drop_duplicates("eager_point_id").sort_values("hidden_size")
    ax.plot(eager["hidden_size"], eager["eager_tpot_s"] * 1e3, "o-", label=f"eager ({eager['cache'].iloc[0]} cache), measured")
    ax.plot(eager["hidden_size"], eager["eager_predicted_s"] * 1e3, "o:", alpha=0.6, label="eager, theory + n_dispatch·τ")
    for mode, g in t.groupby("execution"):
        g = g.sort_values("hidden_size")
        ax.plot(g["hidden_size"], g["tpot_s"] * 1e3, "s-", label=f"{mode}, measured")
        ax.plot(g["hidden_size"], g["predicted_s"] * 1e3, "s:", alpha=0.6, label=f"{mode}, theory + kernels × per-op cost")
    ax.plot(eager["hidden_size"], eager["eager_roofline_s"] * 1e3, "k-", label="roofline (measured ceilings)")
    ax.set_xlabel("hidden_size (width)")
    ax.set_ylabel("decode step (ms)")
    ax.set_yscale("log")
    ax.set_title(f"decode step vs width per execution mode, L={depth}")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)
