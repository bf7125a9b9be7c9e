"""Roofline time per op: max(compute, memory) by default (Williams et al. 2009), or the notebook's
additive compute + memory (seed 000); plus a fixed launch/dispatch overhead per op instance, 0 unless the
hardware spec sets one. Communication rows are timed by the ring all-reduce model instead."""
from dataclasses import dataclass

from theory.errors import TheoryError
from theory.request import sum_decode_s
from theory.hardware import HardwareSpec
from theory.capacity import capacity_json, check_positions
from theory.memory import kv_cache_bytes, weight_bytes
from theory.model import ModelSpec
from theory.dtypes import dtype_bytes
from theory.ops import OP_GROUPS, OpCount, Workload, count_ops
from theory.parallel import ring_allreduce_s, shard_ops

MODES = ("max", "additive")


@dataclass(frozen=True, slots=True)
class OpTime:
    op: OpCount
    compute_s: float
    memory_s: float
    overhead_s: float
    time_s: float
    bound: str               # "compute" | "memory" | "overhead" | "comms"

    @property
    def intensity_flops_per_byte(self) -> float:
        return self.op.flops / self.op.bytes if self.op.bytes else float("inf")


@dataclass(frozen=True)
class Prediction:
    model: ModelSpec
    hardware: HardwareSpec
    workload: Workload
    mode: str
    tp: int
    ops: list[OpTime]

    @property
    def time_s(self) -> float:
        return sum(o.time_s for o in self.ops)

    @property
    def flops(self) -> int:
        return sum(o.op.flops for o in self.ops)

    @property
    def bytes(self) -> int:
        return sum(o.op.bytes for o in self.ops if o.op.group != "comms")

    def group_time_s(self) -> dict[str, float]:
        out = {g: 0.0 for g in OP_GROUPS if g != "comms" or self.tp > 1}
        for o in self.ops:
            out[o.op.group] += o.time_s
        return out

    @property
    def kv_cache_bytes(self) -> int:
        """The cache after this pass (the step contract): prompt_len tokens after prefill, context_len+1 after a decode step."""
        w = self.workload
        tokens = w.context_len + w.query_tokens
        cache = "static" if w.kv_update == "static" else "dynamic"
        return kv_cache_bytes(self.model, w.batch, tokens, w.kv_dtype or w.dtype, cache, w.max_cache_len, self.tp)

    @property
    def weight_bytes(self) -> int:
        return weight_bytes(self.model, self.workload.dtype, self.tp)

    def kv_cache_bytes_as_run(self) -> int:
        """The cache transformers keeps: a dynamic sliding-window layer holds window−1 tokens, not the window."""
        w = self.workload
        cache = "static" if w.kv_update == "static" else "dynamic"
        return kv_cache_bytes(self.model, w.batch, w.context_len + w.query_tokens, w.kv_dtype or w.dtype, cache,
                              w.max_cache_len, self.tp, as_run=True)

    def capacity_json(self, reserve_fraction: float) -> dict:
        """Fits or not (with the reason), usable memory, limits, MoE facts, assumptions and warnings."""
        stand_in = self.hardware.peak_stand_in(self.workload.dtype)
        return capacity_json(self.model, self.hardware, self.workload, reserve_fraction, self.tp,
                             [] if stand_in is None else [stand_in])

    def to_json(self, reserve_fraction: float = 0.0) -> dict:
        w = self.workload
        return {**self.capacity_json(reserve_fraction),
            "model": self.model.name, "hardware": self.hardware.id, "phase": w.phase, "batch": w.batch,
            "prompt_len": w.prompt_len, "context_len": w.context_len, "dtype": w.dtype,
            "kv_dtype": w.kv_dtype or w.dtype, "attention": w.attention, "kv_update": w.kv_update,
            "logits": w.logits, "mode": self.mode, "tp": self.tp,
            "time_s": self.time_s, "flops": self.flops, "bytes": self.bytes,
            **critical_batches(self),
            "groups": {g: {"time_s": t} for g, t in self.group_time_s().items()},
            "ops": [{"name": o.op.name, "group": o.op.group, "count": o.op.count, "flops": o.op.flops,
                     "bytes": o.op.bytes, "weight_bytes": o.op.weight_bytes, "act_bytes": o.op.act_bytes,
                     "kv_read_bytes": o.op.kv_read_bytes, "kv_write_bytes": o.op.kv_write_bytes,
                     "compute_s": o.compute_s, "memory_s": o.memory_s, "overhead_s": o.overhead_s,
                     "time_s": o.time_s, "bound": o.bound,
                     "intensity_flops_per_byte": None if o.op.bytes == 0 else o.intensity_flops_per_byte}
                    for o in self.ops],
        }


def time_op(op: OpCount, hw: HardwareSpec, dtype: str, mode: str, tp: int) -> OpTime:
    overhead = op.count * hw.launch_overhead_s
    if op.group == "comms":
        per_message = op.act_bytes / op.count
        t = op.count * ring_allreduce_s(per_message, tp, hw.interconnect_bandwidth_bytes_per_s, hw.interconnect_latency_s)
        return OpTime(op, 0.0, 0.0, 0.0, t, "comms")
    peak = hw.peak(dtype) if op.is_matmul else hw.vector_peak(dtype)
    compute = op.flops / peak
    memory = op.bytes / hw.memory_bandwidth_bytes_per_s
    core = max(compute, memory) if mode == "max" else compute + memory
    if overhead > core:
        bound = "overhead"
    else:
        bound = "compute" if compute >= memory else "memory"
    return OpTime(op, compute, memory, overhead, core + overhead, bound)


def predict(model: ModelSpec, hw: HardwareSpec, w: Workload, mode: str = "max", tp: int = 1) -> Prediction:
    if mode not in MODES:
        raise TheoryError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if isinstance(tp, bool) or not isinstance(tp, int) or tp < 1:
        raise TheoryError(f"tp must be a positive integer, got {tp!r}")
    check_positions(model, w.context_len + w.query_tokens)
    ops = shard_ops(count_ops(model, w), model, w, tp)
    return Prediction(model, hw, w, mode, tp, [time_op(op, hw, w.dtype, mode, tp) for op in ops])


def critical_batch(hw: HardwareSpec, dtype: str) -> float:
    """Batch at which decoding's weight matmuls turn compute-bound: 2·B FLOPs per weight read of
    `bytes` bytes equals the ridge point, so B = (peak / bandwidth) · bytes / 2 (seed 002's '208')."""
    return hw.peak(dtype) / hw.memory_bandwidth_bytes_per_s * dtype_bytes(dtype) / 2


EXPERT_OPS = ("expert_gate_proj", "expert_up_proj", "expert_down_proj")


def critical_batches(pred: "Prediction") -> dict:
    """The dense critical batch, and for a MoE model the expert matmuls' own: each of E experts sees batch·k/E of
    the batch's tokens (uniform routing), so its matmuls turn compute-bound only at E/k times the dense figure.
    Each with the share of this pass's time its matmuls take, so the one that dominates is visible."""
    dense = critical_batch(pred.hardware, pred.workload.dtype)
    out = {"critical_batch": dense}
    m = pred.model
    if not m.num_moe_layers:
        return out
    total = pred.time_s or 1.0
    expert_s = sum(o.time_s for o in pred.ops if o.op.name in EXPERT_OPS)
    out["critical_batch_by_group"] = {
        "dense": {"critical_batch": dense, "share_of_time": 1 - expert_s / total,
                  "what": "every op but the expert matmuls: attention, dense or shared-expert MLPs, lm_head (every token reads their weights)"},
        "experts": {"critical_batch": dense * m.num_experts / m.experts_per_token, "share_of_time": expert_s / total,
                    "what": f"expert matmuls: each of {m.num_experts} experts sees batch·{m.experts_per_token}/"
                            f"{m.num_experts} tokens (uniform routing)"}}
    return out


def request_times(model: ModelSpec, hw: HardwareSpec, batch: int, prompt_len: int, generated: int,
                  mode: str = "max", tp: int = 1, **workload) -> dict:
    """Whole request: prefill (time to first token) then generated−1 decode steps at contexts
    prompt_len … prompt_len+generated−2; time per output token is the mean decode step."""
    if generated < 1:
        raise TheoryError(f"generated tokens must be at least 1, got {generated}")
    ttft = predict(model, hw, Workload(phase="prefill", batch=batch, prompt_len=prompt_len, **workload), mode, tp).time_s
    step_s = lambda c: predict(model, hw, Workload(phase="decode", batch=batch, context_len=c, **workload), mode, tp).time_s
    n = generated - 1
    decode_s = sum_decode_s(step_s, prompt_len, n)      # bounded time for any n (theory/request.py)
    tpot = decode_s / n if n else 0.0
    return {"time_to_first_token_s": ttft, "time_per_output_token_s": tpot,
            "decode_steps": n, "request_time_s": ttft + decode_s,
            # throughput: tokens the batch produces per second of the time named
            "prefill_tokens_per_s": batch * prompt_len / ttft if ttft else None,
            "decode_tokens_per_s": batch / tpot if tpot else None,
            "request_tokens_per_s": batch * generated / (ttft + decode_s) if ttft + decode_s else None}
