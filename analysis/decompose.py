"""Where every microsecond of a pass goes, per row: ideal roofline (theory, as run, measured ceilings) →
kernels timed alone at these shapes (the kernel-efficiency gap) → composed (+ the framework's own cost) →
measured in the model (the residual: composition, cache and allocator effects).

roofline_s + kernel_gap_s + framework_gap_s + residual_s = measured_time_s, exactly (each gap is a difference).
"""
import pandas as pd

from analysis.compose import op_kernel_times
from analysis.join import SHAPE, no_overhead, row_workloads
from theory.hfconfig import from_hf_config
from theory.roofline import predict

LEVELS = ("roofline_s", "kernel_gap_s", "framework_gap_s", "residual_s")


def decompose(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    out["roofline_s"] = out["predicted_time_s_ceilings"]
    out["kernel_gap_s"] = out["kernels_s"] - out["roofline_s"]
    out["framework_gap_s"] = out["framework_s"]
    out["residual_s"] = out["measured_time_s"] - out["composed_time_s"]
    return out


def op_table(run, df: pd.DataFrame, compose: pd.DataFrame) -> pd.DataFrame:
    """Per (point, phase, step, op): roofline time (theory, as run, ceilings) against instances × kernel time,
    for one representative row per point and phase (the middle decode step; the prefill)."""
    reps = []
    for (pid, phase), g in df[df["composed_time_s"].notna()].groupby(["point_id", "phase"], sort=False):
        reps.append(g.sort_values("step").iloc[len(g) // 2])
    if not reps:
        return pd.DataFrame()
    c = op_kernel_times(compose)
    rows = []
    ceilings = {}
    for r in reps:
        hw = ceilings.setdefault(r["dtype"], no_overhead(run.ceilings(r["dtype"])))
        spec = from_hf_config({k: int(r[k]) for k in SHAPE}, "row")
        roof = {o.op.name: (o.time_s, o.bound) for o in predict(spec, hw, row_workloads(r)[0]).ops}
        mine = c[(c["point_id"] == r["point_id"]) & (c["phase"] == r["phase"]) & (c["step"] == r["step"])]
        for _, k in mine.iterrows():
            t_roof, bound = roof.get(k["op"], (0.0, ""))
            rows.append({"point_id": r["point_id"], "phase": r["phase"], "step": int(r["step"]), "op": k["op"],
                         "count": int(k["count"]), "kernel_id": k["kernel_id"], "kernel_s": k["op_kernel_s"],
                         "roofline_s": t_roof, "bound": bound, "gap_s": k["op_kernel_s"] - t_roof,
                         "roofline_fraction": t_roof / k["op_kernel_s"] if k["op_kernel_s"] > 0 else float("nan")})
    return pd.DataFrame(rows)


def _shape_words(kernel_id: str) -> str:
    return kernel_id.split("|")[3] if kernel_id.count("|") >= 4 else ""


def largest_gaps(df: pd.DataFrame, ops: pd.DataFrame) -> list[dict]:
    """For each point and phase (its representative row): the largest of the per-op kernel gaps, the framework
    and the residual, in plain words."""
    out = []
    if ops.empty:
        return out
    for (pid, phase), g in ops.groupby(["point_id", "phase"], sort=False):
        step = int(g["step"].iloc[0])
        r = df[(df["point_id"] == pid) & (df["phase"] == phase) & (df["step"] == step)].iloc[0]
        worst = g.sort_values("gap_s", ascending=False).iloc[0]
        cands = [("kernel", worst["gap_s"]), ("framework", r["framework_gap_s"]), ("residual", abs(r["residual_s"]))]
        kind, _ = max(cands, key=lambda kv: kv[1])
        measured_ms = r["measured_time_s"] * 1e3
        if kind == "kernel":
            text = (f"{worst['op']} ({_shape_words(worst['kernel_id'])}, ×{worst['count']}) reaches "
                    f"{worst['roofline_fraction']:.0%} of its {worst['bound']}-bound roofline: "
                    f"{worst['kernel_s'] * 1e3:.3f} ms against {worst['roofline_s'] * 1e3:.3f} ms, "
                    f"of {measured_ms:.3f} ms measured")
        elif kind == "framework":
            text = (f"the framework (modules, cache object, masks, Python) adds {r['framework_s'] * 1e3:.3f} ms "
                    f"({r['framework_per_dispatch_s'] * 1e6:.1f} µs per dispatched op over {int(r['tiny_n_dispatch'])} "
                    f"ops) of {measured_ms:.3f} ms measured")
        else:
            text = (f"the model takes {r['residual_s'] * 1e3:+.3f} ms against its kernels and framework composed "
                    f"({r['composed_time_s'] * 1e3:.3f} ms; composition, cache and allocator effects) "
                    f"of {measured_ms:.3f} ms measured")
        out.append({"point_id": pid, "phase": phase, "step": step, "gap": kind,
                    "op": worst["op"] if kind == "kernel" else kind, "text": text})
    return out
