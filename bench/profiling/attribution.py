"""The one table that maps profiler events to theory's op names: (innermost labelled range, aten op) → op.

Ranges come from two sources, pushed only around profiled steps: forward hooks on modules ("mod::<path>")
and wrappers around the functions that are not modules ("op::rotary", "op::kv_update", "op::repeat_kv",
"op::attn_core" for the fused kernel, "op::attn_eager" for materialized attention).
"""
from theory.ops import OPS

UNATTRIBUTED = "unattributed"

# Leaf module names (last component of the module path) → theory op. Beyond Llama, as transformers names them
# (models/gpt_neox, phi, mixtral, qwen2_moe, falcon modeling files): GPT-NeoX embed_in, query_key_value, dense,
# dense_h_to_4h, act, dense_4h_to_h, final_layer_norm; Phi dense, fc1, activation_fn, fc2, final_layernorm,
# q_layernorm, k_layernorm; MoE blocks' router `gate` and their `experts`.
MODULE_OPS = {
    "embed_tokens": "embedding", "q_proj": "q_proj", "k_proj": "k_proj", "v_proj": "v_proj", "o_proj": "o_proj",
    "gate_proj": "gate_proj", "up_proj": "up_proj", "down_proj": "down_proj", "lm_head": "lm_head",
    "input_layernorm": "input_norm", "post_attention_layernorm": "post_attention_norm", "norm": "final_norm",
    "rotary_emb": "rotary",
    "embed_in": "embedding", "query_key_value": "qkv_proj", "dense": "o_proj",
    "dense_h_to_4h": "fc_in", "fc1": "fc_in", "act": "act", "activation_fn": "act",
    "dense_4h_to_h": "fc_out", "fc2": "fc_out", "final_layer_norm": "final_norm", "final_layernorm": "final_norm",
    "q_layernorm": "qk_norm", "k_layernorm": "qk_norm", "q_norm": "qk_norm", "k_norm": "qk_norm",
    "gate": "router", "experts": "experts",
}
# Modules that fuse several of theory's ops: named for the profile, grouped like their parts. GPT-NeoX's
# query_key_value is q, k and v in one matmul; Mixtral's `experts` (MixtralExperts) runs every routed expert's
# gate/up matmul, activation and down matmul, and the routing's gather and index_add, in one module.
FUSED_OPS = {"qkv_proj": "attention", "experts": "mlp"}
# Container modules: their own (self) aten ops decide.
CONTAINER_OPS = {
    "mlp": {"aten::silu": "act_mul", "aten::mul": "act_mul", "aten::silu_": "act_mul", "aten::gelu": "act"},
    "layer": {"aten::add": "residual_add", "aten::add_": "residual_add"},
    "attn": {"aten::cat": "rotary"},       # Phi's partial rotary: the rotated and the passed dims joined again
}
CONTAINERS = {"mlp": "mlp", "self_attn": "attn", "attention": "attn"}
EAGER_SOFTMAX = {"aten::softmax", "aten::_softmax", "aten::_safe_softmax"}
EAGER_MATMUL = {"aten::matmul", "aten::bmm", "aten::mm"}


def module_kind(path: str) -> str:
    leaf = path.rsplit(".", 1)[-1]
    if leaf in MODULE_OPS:
        return leaf
    if leaf in CONTAINERS:
        return CONTAINERS[leaf]
    if leaf.isdigit() and "." in path and path.rsplit(".", 2)[-2] == "layers":
        return "layer"
    return leaf


def module_op(path: str, aten: str) -> str:
    """The op of an aten op run directly inside module `path`: its leaf's op, a container's rule, or else those of
    the module around it (an activation module inside an MLP or inside `experts` takes its parent's op)."""
    while path:
        kind = module_kind(path)
        if kind in MODULE_OPS:
            return MODULE_OPS[kind]
        if kind in CONTAINER_OPS:
            return CONTAINER_OPS[kind].get(aten, UNATTRIBUTED)
        path = path.rsplit(".", 1)[0] if "." in path else ""
    return UNATTRIBUTED


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
    return module_op(range_name[5:], aten)


def group_of(op: str) -> str:
    return OPS[op][0] if op in OPS else FUSED_OPS.get(op, UNATTRIBUTED)
