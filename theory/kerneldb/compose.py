"""Every op of theory's table (theory/ops.py OPS) timed from the database, beside its datasheet roofline.

linears, lm_head, router -> `db:gemm` at (m = tokens in the pass, n = out features, k = in features) per device;
attn_core -> `db:attention` (context rows in prefill, generation rows in decode) at the request's batch, heads
per device, KV heads per device, head_dim and length; allreduce -> `db:comm`; the routed experts -> `db:moe`
(one fused kernel, split over the expert rows by their roofline share); everything the database does not time
(norms, rotary, act·mul, residual adds, embedding, the KV write) -> `derived`: bytes at the bandwidth the
database's memory-bound generation-attention rows reach, with its fastest kernels' time as a per-kernel floor.
vLLM's timed attention call includes its KV-cache write, so with that backend kv_update is `in db:attention`.
"""
from dataclasses import dataclass

from theory.errors import TheoryError
from theory.kerneldb.db import Database
from theory.kerneldb.interp import EXACT, EXTRAPOLATED, Lookup
from theory.model import ModelSpec
from theory.ops import Workload
from theory.roofline import Prediction

RUNTIMES = ("graphs", "eager")
# Host cost of one eager PyTorch op on a CUDA tensor when no measured ceilings are given: 8 µs, an order-of-magnitude
# default inside the "~5–25 µs of CPU-side work per op" (Python, pybind11, dispatcher, backend, cudaLaunchKernel) that
# J. Lin's lesson "From PyTorch op to kernel launch" (jiahuanglin.xyz, gpu_kernel_serving/18) gives for an H100
# bf16 matmul; NOT a measurement of ours. A run's measured `launch_overhead_s` (bench ceilings, --host-ceilings)
# replaces it.
DEFAULT_HOST_DISPATCH_S = 8e-6

GEMM_OPS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "fc_in", "fc_out",
            "lm_head", "router", "shared_expert_gate")
EXPERT_OPS = ("expert_gate_proj", "expert_up_proj", "expert_act_mul", "expert_down_proj")
NOT_IN_DB = ("attn_scores", "attn_softmax", "attn_values", "repeat_kv")     # materialized attention's pieces


@dataclass(frozen=True)
class OpRow:
    name: str
    group: str
    count: int
    source: str                  # db:gemm | db:attention | db:comm | db:moe | derived | in db:attention
    datasheet_s: float
    device_s: float              # Σ kernel times over the instances
    time_s: float                # as composed for the runtime (graphs: device_s; eager: Σ max(host, kernel))
    how: str                     # exact | interpolated | extrapolated | scaled | folded
    shape: str
    note: str = ""


def gemm_shape(name: str, model: ModelSpec, w: Workload, tp: int) -> tuple[int, int, int]:
    """(m, n, k) of one instance, per device (Megatron split as theory/parallel.py shards it)."""
    d, qd, f, hd = model.hidden_size, model.q_dim, model.intermediate_size, model.head_dim
    kv_dev = -(-model.num_key_value_heads // tp) * hd
    m = w.batch * w.query_tokens
    shapes = {"q_proj": (qd // tp, d), "k_proj": (kv_dev, d), "v_proj": (kv_dev, d), "o_proj": (d, qd // tp),
              "gate_proj": (f // tp, d), "up_proj": (f // tp, d), "down_proj": (d, f // tp),
              "fc_in": (f // tp, d), "fc_out": (d, f // tp), "lm_head": (model.vocab_size // tp, d),
              "router": (model.num_experts or 0, d), "shared_expert_gate": (1, d)}
    if name in ("gate_proj", "up_proj", "down_proj") and model.num_moe_layers and model.shared_expert_intermediate_size:
        fs = model.shared_expert_intermediate_size // tp
        shapes.update({"gate_proj": (fs, d), "up_proj": (fs, d), "down_proj": (d, fs)})
    if name == "lm_head" and w.logits == "last":
        m = w.batch
    n, k = shapes[name]
    return m, n, k


def attention_lookup(db: Database, model: ModelSpec, w: Workload, tp: int) -> tuple[Lookup, str, str]:
    """One layer's attention kernel; heads the table lacks are folded into the batch, a head_dim it lacks scaled."""
    h, kv = model.num_attention_heads // tp, -(-model.num_key_value_heads // tp)
    hd, length = model.head_dim, (w.prompt_len if w.phase == "prefill" else w.context_len)
    grids = db.attention(w.phase, w.kv_dtype or w.dtype)
    scale, note = 1.0, ""
    if hd not in grids:
        near = min(grids, key=lambda x: abs(x - hd))
        scale, note = hd / near, f"head_dim {hd} not in the table: its head_dim {near} rows × {hd}/{near}"
        grid = grids[near]
    else:
        grid = grids[hd]
    batch, heads, kvh, how = w.batch, h, kv, EXACT
    if kv not in grid.tree.get(h, {}):
        # Heads are independent: (B, h, kv) does the work of (B·kv/kv', h·kv'/kv, kv') for a kv' dividing kv.
        group = h // kv
        folds = [k2 for k2 in range(kv, 0, -1) if kv % k2 == 0 and k2 in grid.tree.get(group * k2, {})]
        if not folds:
            raise TheoryError(f"the kernel database's attention table has no {h} heads / {kv} KV heads, nor a "
                              f"head count they fold into")
        kvh = folds[0]
        heads, batch = group * kvh, w.batch * kv // kvh
        note = (note + "; " if note else "") + (f"{h} heads / {kv} KV heads folded into batch {batch} × "
                                                 f"{heads}/{kvh} (heads are independent)")
    look = grid.at((heads, kvh, batch, length))
    shape = f"b={batch} h={heads} kv={kvh} hd={hd} {'isl' if w.phase == 'prefill' else 'step'}={length}"
    out = Lookup(look.value * scale, look.how, look.extrapolated_axes)
    if scale != 1.0:
        out.how = EXTRAPOLATED if out.how == EXTRAPOLATED else "scaled"
    elif batch != w.batch and out.how == EXACT:
        out.how = "folded"
    return out, shape, note


def compose(pred: Prediction, db: Database, runtime: str = "graphs", host_s: float = DEFAULT_HOST_DISPATCH_S,
            backend: str = "vllm") -> list[OpRow]:
    if runtime not in RUNTIMES:
        raise TheoryError(f"runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
    model, w, tp = pred.model, pred.workload, pred.tp
    if w.kv_update == "copy" or w.kv_update == "static":
        raise TheoryError("the database times a paged KV cache written in place; --kv-update append only")
    bw, floor = db.memory_bandwidth_bytes_per_s(), db.kernel_floor_s()
    per = lambda kernel_s: max(host_s, kernel_s) if runtime == "eager" else kernel_s
    rows: list[OpRow] = []
    moe_ops = [o for o in pred.ops if o.op.name in EXPERT_OPS]
    moe_time = moe_lookup(db, model, w) if moe_ops else None
    for o in pred.ops:
        op, n_inst = o.op, o.op.count
        note = ""
        if op.name in NOT_IN_DB:
            raise TheoryError(f"the database times fused attention only, not {op.name}: use --attention fused")
        if op.name in GEMM_OPS:
            m, n, k = gemm_shape(op.name, model, w, tp)
            look, source, shape = db.gemm().at((n, k, m)), "db:gemm", f"m={m} n={n} k={k}"
        elif op.name == "attn_core":
            look, shape, note = attention_lookup(db, model, w, tp)
            source = "db:attention"
        elif op.name == "allreduce":
            elems = op.act_bytes // op.count // 2              # bf16 messages (the comm table's dtype)
            look, source, shape = db.allreduce(runtime).at((tp, elems)), "db:comm", f"gpus={tp} elems={elems}"
        elif op.name in EXPERT_OPS:
            share = o.time_s / sum(x.time_s for x in moe_ops)
            look = Lookup(moe_time.value * share, moe_time.how,
                          moe_time.extrapolated_axes)
            source, shape, note = "db:moe", f"tokens={w.batch * w.query_tokens}", "the fused MoE kernel, split by roofline share"
        elif op.name == "kv_update" and backend == "vllm":
            rows.append(OpRow(op.name, op.group, n_inst, "in db:attention", o.time_s, 0.0, 0.0, EXACT, "",
                              "vLLM's timed attention call writes the KV cache"))
            continue
        else:
            per_bytes = op.bytes / n_inst
            kernel = max(floor, per_bytes / bw)
            look, source = Lookup(kernel, EXACT), "derived"
            shape = f"{per_bytes / 1e6:.3f} MB at {bw / 1e9:.0f} GB/s, floor {floor * 1e6:.2f} µs"
        rows.append(OpRow(op.name, op.group, n_inst, source, o.time_s, look.value * n_inst, per(look.value) * n_inst,
                          look.how, shape, "; ".join(x for x in (note, ", ".join(look.extrapolated_axes)) if x)))
    return rows


def moe_lookup(db: Database, model: ModelSpec, w: Workload) -> Lookup:
    key = (model.hidden_size, model.moe_intermediate_size, model.experts_per_token, model.num_experts)
    grids = db.moe()
    if key not in grids:
        raise TheoryError(f"the kernel database's moe table has no hidden {key[0]}, expert width {key[1]}, "
                          f"top-{key[2]} of {key[3]} experts (tp 1, ep 1)")
    return grids[key].at((w.batch * w.query_tokens,))
