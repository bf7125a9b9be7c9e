"""Profile rows (bench's torch.profiler attribution) beside theory's per-op and per-group predictions:
the seeds' attention / MLP / other breakdown, measured against predicted, and the FLOP cross-check."""
import pandas as pd

from analysis.join import no_overhead, row_spec, row_workloads
from theory.roofline import predict

GROUPS = ["attention", "mlp", "other", "unattributed"]


def profiled_steps(run, joined: pd.DataFrame, prof: pd.DataFrame):
    """Yield (key, profile rows, joined row, spec, as-run workload, as-run prediction) per profiled step."""
    prof = prof.copy()
    prof["point_id"] = prof["point_id"].astype(str)
    keyed = joined.set_index(["point_id", "phase", "step"])
    for (pid, phase, step), g in prof.groupby(["point_id", "phase", "step"], sort=False):
        if (pid, phase, step) not in keyed.index:
            continue
        r = keyed.loc[(pid, phase, step)]
        spec = row_spec(r)                   # the model's own config (a family's MLP, experts), else its shape
        as_run, _ = row_workloads({**r.to_dict(), "phase": phase})
        yield (pid, phase, step), g, r, spec, as_run, predict(spec, no_overhead(run.ceilings(r["dtype"], r.get("box") or None)),
                                                      as_run)     # the row's own box's ceilings (merged runs)


# What the measured shares are shares of, and so what theory's shares must be compared against.
SHARE_BASIS = {
    # CPU: an op's self time includes its dispatch cost, so theory's side carries the fitted per-op overhead.
    "cpu": "CPU self time vs roofline + fitted per-op overhead",
    # CUDA: self *device* time is kernel time, which excludes launch cost: compare with the roofline alone; the
    # launch overhead shows up in wall time (kernels + idle gaps), compared separately with roofline + overhead.
    "cuda": "kernel (device) time vs roofline; wall (kernels + idle) vs roofline + fitted per-op overhead",
}


def breakdown_table(run, joined: pd.DataFrame) -> pd.DataFrame:
    """One row per profiled step: measured group shares beside theory's (as run, measured ceilings), and the
    profiler's inflation. Like is compared with like (SHARE_BASIS): on CPU, self time against the roofline plus
    the fitted per-op overhead spread by each op's instance count; on CUDA, kernel time against the roofline
    alone, and the step's wall time (unprofiled median) against roofline + overhead."""
    prof = run.profile
    if prof is None or prof.empty:
        return pd.DataFrame()
    device = run.meta.get("device", "cpu")
    out = []
    for (pid, phase, step), g, r, spec, as_run, pred in profiled_steps(run, joined, prof):
        tau = float(r.get("tau_s", 0.0) or 0.0)
        instances = max(1, sum(x.op.count for x in pred.ops))
        roofline = {k: 0.0 for k in GROUPS}
        overhead = {k: 0.0 for k in GROUPS}
        for o in pred.ops:
            roofline[o.op.group] += o.time_s
            overhead[o.op.group] += o.op.count * tau * (float(r["n_dispatch"]) / instances)
        per_group = roofline if device == "cuda" else {k: roofline[k] + overhead[k] for k in GROUPS}
        total_pred = sum(per_group.values())
        measured = g.groupby("group")["time_s"].sum()
        total = float(g["step_profiled_s"].iloc[0])
        rec = {"point_id": pid, "phase": phase, "step": step, "hidden_size": int(r["hidden_size"]),
               "num_hidden_layers": int(r["num_hidden_layers"]), "attention": r["attention"],
               "inflation": float(g["inflation"].iloc[0]), "step_profiled_s": total,
               "step_median_s": float(g["step_median_s"].iloc[0]), "share_basis": SHARE_BASIS.get(device, device)}
        for k in GROUPS:
            rec[f"measured_share_{k}"] = float(measured.get(k, 0.0)) / total if total else 0.0
            rec[f"predicted_share_{k}"] = per_group[k] / total_pred if total_pred else 0.0
        if device == "cuda":
            rec["kernel_s"] = total
            rec["predicted_roofline_s"] = sum(roofline.values())
            rec["wall_s"] = rec["step_median_s"]
            rec["predicted_roofline_overhead_s"] = sum(roofline.values()) + sum(overhead.values())
        out.append(rec)
    return pd.DataFrame(out)


def flop_check(run, joined: pd.DataFrame) -> pd.DataFrame:
    """FlopCounterMode's count per op (profile rows) against theory's, for prefill and decode step 0.
    Attention is compared with the unhalved count (FlopCounterMode counts the full square)."""
    prof = run.profile
    if prof is None or prof.empty or "flops_counted" not in prof:
        return pd.DataFrame()
    rows = []
    for (pid, phase, step), g, r, spec, as_run, pred in profiled_steps(run, joined, prof[prof["flops_counted"].notna()]):
        theory = {o.op.name: o.op.flops for o in pred.ops}
        # Unhalved attention matmuls: 4·B·heads·q_tokens·keys·head_dim per layer.
        q = int(r["prompt_len"]) if phase == "prefill" else 1
        keys = int(r["max_cache_len"]) if as_run.kv_update == "static" else (q if phase == "prefill" else int(r["context_len"]) + 1)
        attn_full = 4 * int(r["batch"]) * spec.num_attention_heads * q * keys * spec.head_dim * spec.num_hidden_layers
        seen = set()
        for _, p in g.iterrows():
            op = p["op"]
            key = "attention" if op in ("attn_core", "attn_scores", "attn_values") else op
            if key in seen:
                continue
            seen.add(key)
            th = attn_full if key == "attention" else theory.get(op)
            if th:
                rows.append({"point_id": pid, "phase": phase, "step": step, "op": key,
                             "flops_counted": int(p["flops_counted"]), "flops_theory": int(th),
                             "ratio": float(p["flops_counted"]) / th})
    return pd.DataFrame(rows)


def op_points(run, joined: pd.DataFrame) -> pd.DataFrame:
    """Each profiled op placed for the roofline chart: theory's FLOPs and bytes over its measured time."""
    prof = run.profile
    if prof is None or prof.empty:
        return pd.DataFrame()
    rows = []
    for (pid, phase, step), g, r, spec, as_run, pred in profiled_steps(run, joined, prof):
        theory = {o.op.name: o.op for o in pred.ops}
        for _, p in g.iterrows():
            op = theory.get(p["op"])
            if op is None or p["time_s"] <= 0 or op.bytes == 0 or op.flops == 0:
                continue
            rows.append({"point_id": pid, "phase": phase, "step": step, "op": op.name, "group": op.group,
                         "intensity_flops_per_byte": op.flops / op.bytes,
                         "achieved_flops_per_s": op.flops / p["time_s"], "time_s": p["time_s"]})
    return pd.DataFrame(rows)
