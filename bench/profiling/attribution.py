"""The one table that maps profiler events to theory's op names: (innermost labelled range, aten op) → op.

Ranges come from two sources, pushed only around profiled steps: forward hooks on modules ("mod::<path>")
and wrappers around the functions that are not modules ("op::rotary", "op::kv_update", "op::repeat_kv",
"op::attn_core" for the fused kernel, "op::attn_eager" for materialized attention).
"""
from theory.ops import OPS

UNATTRIBUTED = "unattributed"

# Leaf module names (last component of the module path) → theory op.
MODULE_OPS = {
    "embed_tokens": "embedding", "q_proj": "q_proj", "k_proj": "k_proj", "v_proj": "v_proj", "o_proj": "o_proj",
    "gate_proj": "gate_proj", "up_proj": "up_proj", "down_proj": "down_proj", "lm_head": "lm_head",
    "input_layernorm": "input_norm", "post_attention_layernorm": "post_attention_norm", "norm": "final_norm",
    "rotary_emb": "rotary",
}
# Container modules: their own (self) aten ops decide.
CONTAINER_OPS = {
    "mlp": {"aten::silu": "act_mul", "aten::mul": "act_mul", "aten::silu_": "act_mul"},
    "layer": {"aten::add": "residual_add", "aten::add_": "residual_add"},
}
EAGER_SOFTMAX = {"aten::softmax", "aten::_softmax", "aten::_safe_softmax"}
EAGER_MATMUL = {"aten::matmul", "aten::bmm", "aten::mm"}


def module_kind(path: str) -> str:
    leaf = path.rsplit(".", 1)[-1]
    if leaf in MODULE_OPS:
        return leaf
    if leaf == "mlp":
        return "mlp"
    if leaf.isdigit() and path.rsplit(".", 2)[-2] == "layers":
        return "layer"
    return leaf


def attribute(range_name: str | None, aten: str, eager_matmul_index: int) -> str:
    """range_name: the innermost labelled range ("mod::…" or "op::…") around this aten op, or None."""
    if range_name is None:
        return UNATTRIBUTED
    if range_name.startswith("op::"):
        op = range_name[4:]
        if op == "attn_eager":
            if aten in EAGER_SOFTMAX:
                return "attn_softmax"
            if aten in EAGER_MATMUL:
                return "attn_scores" if eager_matmul_index == 0 else "attn_values"
            return "attn_softmax"          # mask add, scaling, dropout: element-wise work on the score matrix
        return op if op in OPS else UNATTRIBUTED
    kind = module_kind(range_name[5:])
    if kind in MODULE_OPS:
        return MODULE_OPS[kind]
    return CONTAINER_OPS.get(kind, {}).get(aten, UNATTRIBUTED)


def group_of(op: str) -> str:
    return OPS[op][0] if op in OPS else UNATTRIBUTED
