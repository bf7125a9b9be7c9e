"""Join every measured row with theory's prediction for the same shape, batch, tokens, phase, step and dtype:
"as run" (the cache, attention and logits choices bench recorded) and ideal, under the run's measured
ceilings, those measured again at its end (`_ceilings_end`, where run.json has them) and, when the catalog knows
the device, its datasheet."""
import pandas as pd

from theory.asrun import row_workload_terms
from theory.hardware import HardwareSpec
from theory.memory import kv_cache_bytes, streamed_bytes
from theory.errors import TheoryError
from theory.hfconfig import from_hf_config, load_model
from theory.ops import Workload
from theory.modes import predict_mode
from theory.roofline import predict

SHAPE = ["hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim",
         "intermediate_size", "vocab_size"]


def row_workloads(r) -> tuple[Workload, Workload]:
    phase = r["phase"]
    common = dict(phase=phase, batch=int(r["batch"]), dtype=r["dtype"])
    if phase == "prefill":
        common["prompt_len"] = int(r["prompt_len"])
    else:
        common["context_len"] = int(r["context_len"])
    mcl = int(r["max_cache_len"]) if r["kv_update"] == "static" else None
    as_run = Workload(**common, **row_workload_terms(phase, r["theory_attention"], r["kv_update"], mcl,
                                                     bool(int(r["repeat_kv"])), r["logits"]))
    return as_run, Workload(**common)


def no_overhead(hw: HardwareSpec) -> HardwareSpec:
    """The roofline alone: the fixed per-op cost is fitted separately (analysis.fit)."""
    return HardwareSpec(**{**hw.to_json(), "launch_overhead_s": 0.0})


def row_spec(r):
    """The row's model: its config (families beyond Llama: windows, MoE, biases) where the sweep named one that
    is still readable, else the Llama shape its columns record."""
    model = r.get("model")
    if isinstance(model, str) and model:
        try:
            return load_model(model)
        except TheoryError:
            pass
    return from_hf_config({k: int(r[k]) for k in SHAPE}, "row")


def join(run) -> pd.DataFrame:
    ok = run.ok.copy()
    out = []
    cache = {}
    for _, r in ok.iterrows():
        spec = row_spec(r)
        as_run, ideal = row_workloads(r)
        box = r.get("box") or None                 # a merged or Ray run: the ceilings of the box that measured it
        if (box, r["dtype"]) not in cache:
            cache[(box, r["dtype"])] = run.ceilings(r["dtype"], box), run.datasheet(box), run.ceilings_end(r["dtype"], box)
        ceil, datasheet, ceil_end = cache[(box, r["dtype"])]
        rec = {}
        for label, hw in (("ceilings", ceil), ("datasheet", datasheet), ("ceilings_end", ceil_end)):
            if hw is None:
                rec[f"predicted_time_s_{label}"] = rec[f"predicted_time_s_{label}_ideal"] = None
                continue
            base = no_overhead(hw)
            p = predict_mode(spec, base, as_run, r["execution"])    # eager: the op table as is
            rec[f"predicted_time_s_{label}"] = p.time_s
            rec[f"predicted_time_s_{label}_ideal"] = predict(spec, base, ideal).time_s
            if label == "ceilings":
                rec["predicted_flops"] = p.flops
                rec["predicted_bytes"] = p.bytes
                rec["predicted_compute_s"] = sum(o.compute_s for o in p.ops)
                rec["predicted_memory_s"] = sum(o.memory_s for o in p.ops)
                rec["theory_op_instances"] = sum(o.op.count for o in p.ops)
                rec["working_set_bytes"] = p.weight_bytes + p.kv_cache_bytes
                rec["streamed_bytes"] = streamed_bytes(spec, int(r["batch"]), int(r["prompt_len"]) + int(
                    r["generated"]), r["dtype"])          # per pass at the point's full length, as bench sizes it
                rec["ridge_flops_per_byte"] = hw.ridge(r["dtype"])
            if label == "datasheet":
                rec["datasheet_ridge_flops_per_byte"] = hw.ridge(r["dtype"])
        tokens = int(r["prompt_len"]) if r["phase"] == "prefill" else int(r["context_len"]) + 1
        rec["kv_cache_bytes_theory"] = kv_cache_bytes(
            spec, int(r["batch"]), tokens, r["dtype"], "static" if r["kv_update"] == "static" else "dynamic",
            int(r["max_cache_len"]) if r["kv_update"] == "static" else None, as_run=True)
        out.append(rec)
    joined = pd.concat([ok.reset_index(drop=True), pd.DataFrame(out)], axis=1)
    joined = joined.rename(columns={"time_s": "measured_time_s"})
    m = joined["measured_time_s"]
    joined["ratio_ceilings"] = m / joined["predicted_time_s_ceilings"]
    joined["ratio_ceilings_ideal"] = m / joined["predicted_time_s_ceilings_ideal"]
    joined["ratio_datasheet"] = m / joined["predicted_time_s_datasheet"].astype(float)
    joined["achieved_flops_per_s"] = joined["predicted_flops"] / m
    joined["achieved_bytes_per_s"] = joined["predicted_bytes"] / m
    joined["roofline_fraction"] = joined["predicted_time_s_ceilings"] / m
    if "canary_ratio" in joined.columns:       # the box's speed when the point ran / at the start (bench/timing/canary.py)
        drift = pd.to_numeric(joined["canary_ratio"], errors="coerce").fillna(1.0)
        joined["predicted_time_s_ceilings_drift"] = joined["predicted_time_s_ceilings"] * drift
        joined["ratio_ceilings_drift"] = m / joined["predicted_time_s_ceilings_drift"]
    return joined
