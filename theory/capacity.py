"""What a prediction says besides time: does it fit, how far batch and context go, what was assumed and warned.

Shared by the roofline (theory/roofline.py) and the kernel calibration (theory/calibration/output.py), so both give
the same stable JSON keys (`fits`, `fits_reason`, `usable_memory_bytes`, `max_batch_at_context`, ..., `assumptions`,
`warnings`)."""
from theory.errors import TheoryError
from theory.hardware import HardwareSpec
from theory.memory import (feasibility, kv_cache_bytes, max_batch_at_context, max_context_at_batch, replicated_kv_heads,
                           usable_bytes, weight_bytes)
from theory.model import ModelSpec
from theory.moe import moe_summary
from theory.ops import Workload


def check_positions(model: ModelSpec, tokens: int) -> None:
    """A learned position table (GPT-2's wpe) has one row per position: a pass past it cannot run at all (the
    embedding lookup fails), so it is refused up front; rotary models only get a warning (capacity_json)."""
    if model.positions == "learned" and tokens > model.learned_positions:
        raise TheoryError(f"{model.name} has a learned position table of {model.learned_positions} rows "
                          f"(max_position_embeddings / n_positions); {tokens} tokens need position {tokens - 1}, "
                          "which it cannot embed")


def tp_assumptions(model: ModelSpec, tp: int) -> list[str]:
    kv = model.num_key_value_heads
    if tp <= 1 or tp <= kv and kv % tp == 0:
        return []
    held = replicated_kv_heads(model, tp)
    return [f"tp {tp} with {kv} kv heads: each device holds {held} kv head(s) (ceil({kv}/{tp})), so kv heads and "
            f"their k/v weights and cache are replicated, {held * tp / kv:g}x in all"]


def memory_source(hw: HardwareSpec) -> str:
    """Where the usable figure comes from, in words for the table."""
    if hw.kind == "cpu":
        return "the box's RAM as bench read it"
    if hw.usable_memory_bytes:
        return "driver total"
    return "no driver figure: the marketing capacity"


def capacity_json(model: ModelSpec, hw: HardwareSpec, w: Workload, reserve_fraction: float, tp: int,
                  assumptions: list[str] | None = None) -> dict:
    """Fits or not (with the reason), usable memory, batch and context limits, MoE facts, assumptions, warnings."""
    cache = "static" if w.kv_update == "static" else "dynamic"
    tokens = w.context_len + w.query_tokens
    fits, reason = feasibility(model, hw, w.batch, tokens, w.dtype, w.kv_dtype, reserve_fraction, tp, cache,
                               w.max_cache_len)
    out = {"fits": fits, "fits_reason": reason, "usable_memory_bytes": usable_bytes(hw, reserve_fraction),
           "usable_memory_source": memory_source(hw), "memory_capacity_bytes": hw.memory_capacity_bytes,
           "memory_kind": hw.kind,
           "weight_bytes": weight_bytes(model, w.dtype, tp),
           "kv_cache_bytes": kv_cache_bytes(model, w.batch, tokens, w.kv_dtype or w.dtype, cache, w.max_cache_len, tp),
           "kv_cache_bytes_as_run": kv_cache_bytes(model, w.batch, tokens, w.kv_dtype or w.dtype, cache,
                                                   w.max_cache_len, tp, as_run=True),
           "reserve_fraction": reserve_fraction,
           "max_batch_at_context": max_batch_at_context(model, hw, tokens, w.dtype, w.kv_dtype, reserve_fraction, tp),
           "max_context_at_batch": max_context_at_batch(model, hw, w.batch, w.dtype, w.kv_dtype, reserve_fraction, tp),
           "params": model.num_params,
           "assumptions": list(assumptions or []) + list(model.assumptions) + tp_assumptions(model, tp),
           "warnings": []}
    if tokens > model.max_position_embeddings:
        out["warnings"].append(f"context {tokens} passes max_position_embeddings {model.max_position_embeddings}:"
                               " the model was not trained this long")
    moe = moe_summary(model, w.batch * w.query_tokens)
    if moe:
        out["moe"] = moe
    return out
