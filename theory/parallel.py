"""Tensor parallelism: per-device shares and the communication it adds.

Megatron-style TP (Shoeybi et al. 2019): q/k/v/gate/up column-parallel, o/down row-parallel, so each
layer's forward needs two all-reduces of the activations (batch·tokens·d values). The arithmetic article
(seed 002) counts four per layer; `article_latency` keeps its conventions for reproducing its numbers.
"""
from dataclasses import replace

from theory.dtypes import dtype_bytes
from theory.errors import TheoryError
from theory.model import ModelSpec
from theory.ops import OPS, OpCount, Workload

ALLREDUCES_PER_LAYER = 2
SHARDED_GROUPS = ("attention", "mlp")
KV_PROJECTIONS = ("k_proj", "v_proj")


def ring_allreduce_s(message_bytes: float, n_devices: int, bandwidth_bytes_per_s: float, latency_s: float) -> float:
    """Ring all-reduce: α + 2(N−1)/N · bytes/β, β the per-direction link bandwidth (Patarasuk & Yuan 2009)."""
    if n_devices <= 1:
        return 0.0
    if bandwidth_bytes_per_s <= 0:
        raise TheoryError("tensor parallelism needs an interconnect bandwidth in the hardware spec")
    return latency_s + 2 * (n_devices - 1) / n_devices * message_bytes / bandwidth_bytes_per_s


def allreduce_message_bytes(model: ModelSpec, w: Workload) -> int:
    return w.batch * w.query_tokens * model.hidden_size * dtype_bytes(w.act_dtype or w.dtype)


def shard_ops(ops: list[OpCount], model: ModelSpec, w: Workload, tp: int) -> list[OpCount]:
    """Per-device counts: attention and MLP work and the lm_head split tp ways; embedding, norms and
    residual adds replicated; plus the all-reduce row (its bytes are bytes sent per message × count)."""
    if tp <= 1:
        return ops
    if model.num_attention_heads % tp:
        raise TheoryError(f"tp {tp} does not divide num_attention_heads {model.num_attention_heads}")
    out = []
    # With fewer kv heads than ranks each device holds a replicated head: K/V bytes and the k/v projections
    # scale by the heads a device holds (ceil(kv/tp)) over all kv heads, not by 1/tp.
    kv, rep = model.num_key_value_heads, -(-model.num_key_value_heads // tp)
    for op in ops:
        if op.name in KV_PROJECTIONS:
            op = replace(op, flops=op.flops * rep // kv, weight_bytes=op.weight_bytes * rep // kv,
                         act_bytes=op.act_bytes * rep // kv)
        elif op.group in SHARDED_GROUPS or op.name == "lm_head":
            op = replace(op, flops=op.flops // tp, weight_bytes=op.weight_bytes // tp, act_bytes=op.act_bytes // tp,
                         kv_read_bytes=op.kv_read_bytes * rep // kv, kv_write_bytes=op.kv_write_bytes * rep // kv)
        out.append(op)
    count = ALLREDUCES_PER_LAYER * model.num_hidden_layers
    out.append(OpCount("allreduce", OPS["allreduce"][0], count, 0, 0, count * allreduce_message_bytes(model, w), 0, 0, False))
    return out


def article_latency(params: float, n_layers: int, d_model: int, n_devices: int, batch: int,
                    flops_per_s: float, bandwidth_bytes_per_s: float, comm_bytes_per_s: float,
                    comm_latency_s: float = 10e-6, allreduces_per_layer: int = 4, bytes_per_value: int = 2) -> dict:
    """The arithmetic article's two regimes for one decode step, as it writes them (seed 002):
    small batch: compute = 2·P / (N·A_bm) and comms = layers·4·α;
    large batch: compute = B·2·P / (N·A_f) and comms = B·layers·4·d·bytes / A_c.
    The article's own large-batch sums leave out the bytes factor; pass bytes_per_value=1 to match them."""
    return {
        "small_batch_compute_s": 2 * params / (n_devices * bandwidth_bytes_per_s),
        "small_batch_comms_s": n_layers * allreduces_per_layer * comm_latency_s,
        "large_batch_compute_s": batch * 2 * params / (n_devices * flops_per_s),
        "large_batch_comms_s": batch * n_layers * allreduces_per_layer * d_model * bytes_per_value / comm_bytes_per_s,
    }


def attention_bottleneck_cli(n_layer: int, n_head: int, dim_head: int, seq: int, ngpu: int, flops_per_s: float,
                             bandwidth_bytes_per_s: float, link_bytes_per_s: float, bytes_per_value: int = 4) -> dict:
    """The attention-bottleneck CLI's own conventions (seed 004), kept apart from the core formulas:
    a dot product of length k costs 2k−1 FLOPs; K and V are read as seq−1 cached rows; compute and memory
    time are divided by the GPU count, the synchronisation is not; the required bandwidth is the cached
    bytes over the single-GPU compute time (plus the sync time, for the 'with sync' figure)."""
    kv_read = n_head * dim_head * (seq - 1) * bytes_per_value
    out = {"kv_cache_bytes": 2 * n_layer * n_head * dim_head * seq * bytes_per_value}
    for name, flops, sync_bytes in (
        ("scores", n_head * seq * (2 * dim_head - 1), n_head * seq * bytes_per_value),         # S = q·Kᵀ
        ("values", n_head * dim_head * (2 * seq - 1), n_head * dim_head * bytes_per_value),    # attn = S·V
    ):
        compute_s = flops / flops_per_s
        sync_s = sync_bytes / link_bytes_per_s
        out[name] = {
            "flops": flops, "compute_s": compute_s / ngpu, "read_bytes": kv_read,
            "memory_s": kv_read / bandwidth_bytes_per_s / ngpu, "sync_bytes": sync_bytes, "sync_s": sync_s,
            "bandwidth_with_sync_bytes_per_s": kv_read / (compute_s + sync_s),
            "bandwidth_without_sync_bytes_per_s": kv_read / compute_s,
        }
    return out
