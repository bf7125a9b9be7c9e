"""Execution modes "as run": what torch.compile's fusion and CUDA graphs change in a forward pass.

The arithmetic of the matmuls and attention does not change with the mode; three things do:
1. Fusion removes intermediate elementwise traffic. Inductor fuses each residual add with the norm after it
   (its generated kernels are named e.g. `cpp_fused_add_mean_mul_pow_rsqrt`), so the sum is written once and
   not read back by the norm: one activation tensor (tokens × d) saved per add. SiLU·mul and rotary are
   already counted as single passes in theory.ops (inputs read once, output written once), so fusion leaves
   them as they are; fusing rotary into the cache write saves the rotated K's read-back, which theory.ops
   never counts either.
2. Dispatched ops: a compiled graph runs each matmul and attention as one extern call and every run of
   elementwise ops between two of them as one generated kernel (compiled_kernels below); bench counts the
   real number from the profiler, as it counts eager dispatches.
3. CUDA graphs replay the whole step as one launch: one fixed cost per step instead of one per kernel.
"""
from dataclasses import replace

from theory.dtypes import dtype_bytes
from theory.hardware import HardwareSpec
from theory.model import ModelSpec
from theory.ops import Workload, count_ops
from theory.roofline import Prediction, time_op

EXECUTIONS = ("eager", "compile", "compile-static", "cudagraphs")
COMPILED = ("compile", "compile-static", "cudagraphs")
STATIC_EXECUTIONS = ("compile-static", "cudagraphs")        # need the static cache
CUDA_ONLY = ("cudagraphs",)
NORMS_AFTER_ADD = ("post_attention_norm", "input_norm", "final_norm")
# Ops a compiled graph runs as extern calls, the same kernels eager runs (the matmuls and the attention kernel,
# seen as aten::mm / addmm / bmm / _scaled_dot_product_* under the graph's call); every other op of the table is
# part of an Inductor-generated kernel (bench/profiling/compiled_names.py).
EXTERN_OPS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "fc_in", "fc_out",
              "lm_head", "attn_core", "attn_scores", "attn_values")


def fusion_saved_bytes(model: ModelSpec, w: Workload) -> int:
    """Activation bytes fusion removes from a forward: each of the 2L residual adds is followed by a norm
    (post_attention_norm; the next layer's input_norm or final_norm) that no longer reads the sum back."""
    act_bytes = dtype_bytes(w.act_dtype or w.dtype)
    tokens = w.batch * w.query_tokens
    return 2 * model.num_hidden_layers * tokens * model.hidden_size * act_bytes


def fused_ops(model: ModelSpec, w: Workload, execution: str) -> list:
    """theory.ops' op table as the mode runs it: the saving lands on the norms that no longer re-read."""
    ops = count_ops(model, w)
    if execution not in COMPILED:
        return ops
    tokens = w.batch * w.query_tokens
    per_norm = tokens * model.hidden_size * dtype_bytes(w.act_dtype or w.dtype)
    out = []
    for op in ops:
        if op.name in NORMS_AFTER_ADD:
            reads_saved = op.count if op.name != "input_norm" else op.count - 1   # layer 0 follows the embedding
            op = replace(op, act_bytes=op.act_bytes - reads_saved * per_norm)
        out.append(op)
    return out


def predict_mode(model: ModelSpec, hw: HardwareSpec, w: Workload, execution: str, mode: str = "max") -> Prediction:
    """The roofline of the op table as the execution mode runs it (no per-op overhead: that is counted apart)."""
    no_overhead = HardwareSpec(**{**hw.to_json(), "launch_overhead_s": 0.0})
    return Prediction(model, hw, w, mode, 1, [time_op(op, no_overhead, w.dtype, mode, 1)
                                              for op in fused_ops(model, w, execution)])


def compiled_kernels(model: ModelSpec, execution: str) -> int | None:
    """Launches per forward that theory expects from a compiled graph of a Llama-style model.

    Per layer: 7 matmuls (q, k, v, o, gate, up, down) and the attention kernel as extern calls (8), and 6
    generated kernels for the elementwise runs between them: the norm before attention (fused with the previous
    residual add, or with the embedding gather in layer 0), rotary of Q, rotary of K fused with its cache write,
    V's cache write, the residual add with the post-attention norm, SiLU·mul. Once per forward: the last add
    with the final norm, lm_head, and the static cache's position update. Read off inductor's kernel names
    (torch 2.13, CPU, static cache); bench counts the real number (bench.modes.count_compiled_ops), so a
    different fusion shows up as a difference, not as a silent error. CUDA graphs: one replay. Eager: None."""
    if execution == "cudagraphs":
        return 1
    if execution not in COMPILED:
        return None
    return 14 * model.num_hidden_layers + 3


def generated_ops(model: ModelSpec, w: Workload, execution: str) -> list:
    """The op table's rows a compiled graph runs inside generated kernels (fused traffic), as the mode runs them."""
    return [op for op in fused_ops(model, w, execution) if op.name not in EXTERN_OPS]
