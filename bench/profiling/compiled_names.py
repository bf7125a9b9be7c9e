"""Inductor kernel names → theory ops (torch-free).

What the name holds (torch/_inductor/utils.py get_fused_kernel_name, descriptive_names="original_aten", the
default of both cpp and triton backends): "<prefix>_fused_" + the sorted, de-duplicated names of the aten ops
the kernel was generated from (their overload packets, before decomposition) + "_<n>". With
`cpp.enable_kernel_profile` each CPU kernel records itself under "graph_<graph id>_" + that name
(codegen/cpp.py); triton launches record the kernel's name (runtime/triton_heuristics.py _RecordFunctionFast).
Verified on torch 2.13 CPU with a tiny Llama: e.g. `graph_0_cpp_fused_add_embedding_mean_mul_pow_rsqrt_0`
(the embedding gather fused with layer 0's input norm), `cpp_fused__unsafe_view_mul_silu_5` (SiLU·mul).

Rules (each a marker that names a theory op; the generic arithmetic aten ops are absorbed by a marker and
name nothing alone, except `add`, the residual add, in a kernel of adds and layout ops only):
- embedding → embedding; rsqrt, or pow with mean → a norm (which one is set by the caller from the matmul that
  follows); silu/gelu with mul → act_mul (alone: act); sin or cos, or neg with cat (rotate_half) → rotary;
  index_copy / index_put / scatter → kv_update, and cat without neg (the dynamic cache's concatenation: a
  cache cat fused into a kernel that also runs rotate_half cannot be told apart and stays rotary's);
  softmax/amax/exp → attn_softmax.
- Layout and dtype ops (views, transposes, clones, casts, arange, the SDPA's input layout) name nothing.
- Anything else (mask comparisons, copy_ write-backs, unknown names) is listed as unmapped; a kernel with no
  marker at all is `unattributed`, never guessed.
"""
import re

from theory.ops import OPS

UNATTRIBUTED = "unattributed"
NORM = "norm"                       # placeholder member: the caller names it input/post_attention/final_norm

_KERNEL = re.compile(r"^(?:graph_\d+_)?(?:cpp|triton(?:_[a-z]+)?)_fused_(?P<ops>.*?)(?:_\d+)?$")
LAYOUT = {"view", "_unsafe_view", "reshape", "transpose", "permute", "unsqueeze", "squeeze", "expand", "clone",
          "_to_copy", "slice", "select", "as_strided", "alias", "t", "detach", "full", "arange", "scalar_tensor",
          "empty", "zeros", "ones", "lift_fresh_copy", "index", "_scaled_dot_product_flash_attention_for_cpu",
          "_scaled_dot_product_flash_attention", "_scaled_dot_product_efficient_attention",
          "_scaled_dot_product_cudnn_attention", "scaled_dot_product_attention"}
ARITH = {"add", "mul", "sub", "div", "pow", "mean", "rsqrt", "neg", "cat", "sum", "exp", "amax", "sigmoid",
         "reciprocal", "sqrt", "tanh", "erf"}
MARKERS = {"embedding", "silu", "gelu", "sin", "cos", "index_copy", "index_put", "scatter", "_softmax", "softmax",
           "native_layer_norm", "var_mean"}
VOCAB = sorted(LAYOUT | ARITH | MARKERS | {"copy_", "copy", "le", "lt", "ge", "gt", "eq", "ne", "where",
                                           "bitwise_and", "bitwise_or", "logical_and", "logical_not", "mm",
                                           "addmm", "bmm", "argmax"}, key=len, reverse=True)


def is_generated_kernel(name: str) -> bool:
    return _KERNEL.match(name) is not None


def aten_names(kernel: str) -> list[str]:
    """The aten op names a generated kernel's name lists (unknown pieces kept as they are)."""
    m = _KERNEL.match(kernel)
    if not m:
        return []
    s, i, out = m.group("ops"), 0, []
    while i < len(s):
        for name in VOCAB:
            end = i + len(name)
            if s.startswith(name, i) and (end == len(s) or s[end] == "_"):
                out.append(name)
                i = end + 1
                break
        else:                                   # unknown: leading underscores, then up to the next "_"
            j = i
            while j < len(s) and s[j] == "_":
                j += 1
            end = s.find("_", j)
            end = len(s) if end < 0 else end
            out.append(s[i:end])
            i = end + 1
    return out


def kernel_members(kernel: str) -> tuple[list[str], list[str]]:
    """(theory members, unmapped aten names) of one generated kernel. A norm is the placeholder NORM."""
    names = set(aten_names(kernel))
    members = []
    if "embedding" in names:
        members.append("embedding")
    if "rsqrt" in names or {"pow", "mean"} <= names or names & {"native_layer_norm", "var_mean"}:
        members.append(NORM)
    if names & {"sin", "cos"} or {"neg", "cat"} <= names:
        members.append("rotary")
    if names & {"index_copy", "index_put", "scatter"} or ("cat" in names and "neg" not in names):
        members.append("kv_update")
    if names & {"_softmax", "softmax"}:
        members.append("attn_softmax")
    if names & {"silu", "gelu"}:
        members.append("act_mul" if "mul" in names else "act")
    if not members and "add" in names and names <= LAYOUT | {"add"}:
        members.append("residual_add")
    known = LAYOUT | MARKERS | (ARITH if members else set())
    return members, sorted(n for n in names if n not in known)


def group_name(members) -> str:
    """One member: its theory op; several: fused(a+b), members in theory's op-table order."""
    ms = sorted(set(members), key=lambda m: list(OPS).index(m) if m in OPS else len(OPS))
    if not ms:
        return UNATTRIBUTED
    return ms[0] if len(ms) == 1 else "fused(" + "+".join(ms) + ")"


def members_of(op: str) -> list[str]:
    """Inverse of group_name: the theory ops a profile row's op stands for."""
    if op.startswith("fused(") and op.endswith(")"):
        return op[6:-1].split("+")
    return [] if op == UNATTRIBUTED else [op]


def group_of_members(members) -> str:
    """The op table's group (attention / mlp / other) shared by all members, else "mixed"."""
    groups = {OPS[m][0] for m in members if m in OPS}
    if not groups:
        return UNATTRIBUTED
    return groups.pop() if len(groups) == 1 else "mixed"
