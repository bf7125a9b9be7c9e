"""Attribute a compiled step's profiler events to theory's op names (duck-typed over torch's FunctionEvent).

What the profiler shows for a compiled forward on CPU (torch 2.13, verified on a tiny Llama): top-level
`TorchDynamo Cache Lookup` (guards) and `Torch-Compiled Region: <frame>/<n>`, under it `Pregraph bytecode`,
`AOTDispatcher Runtime Wrapper Prologue` and `## Call CompiledFxGraph <hash> ##`, whose direct children are the
step's work in program order: Inductor's generated kernels (names: bench/profiling/compiled_names.py) and extern calls
(aten::mm / addmm / bmm for the matmuls, aten::_scaled_dot_product_flash_attention_for_cpu for attention).

- An extern matmul is named by its weight's (in, out) shape against the model's shapes (q/k/v/o/gate/up/down/
  lm_head); shapes shared by several ops (k and v; q and o when heads × head_dim = d) are told apart by their
  order in the layer (q, k, v, o, gate, up, down).
- A generated kernel is named by its members (names.kernel_members); a norm takes its name from the matmul
  after it (q/k/v → input_norm, gate/up/fc_in → post_attention_norm, lm_head → final_norm; with no named
  matmul after it, from its order: two per layer, then the final one); every norm
  but the step's first reads a residual sum that Inductor fuses into it (the name's `add` is also the norm's
  eps), so it counts residual_add as a member unless a kernel of its own did that add since the last matmul.
- The graph's wrappers (guards, the compiled region, the Python that calls the kernels) are `framework`; aten
  ops outside any graph (graph breaks) are attributed to nothing and stay `unattributed` with their name.
- A CUDA graph replay (a `cudaGraphLaunch` under the graph call, after the input copy `aten::_foreach_copy_`)
  runs no CPU op per kernel: the graph's device kernels are the units, the input copy is framework.
Time per event: CPU, the event's total time (its sub-ops included: an extern's internal copies are its own);
CUDA, the device time of the kernels it launched. Each row keeps the kernel names it sums.
"""
from collections import defaultdict

from bench.profiling.compiled_names import NORM, UNATTRIBUTED, group_name, group_of_members, is_generated_kernel, kernel_members

FRAMEWORK = "framework"
GRAPH_CALL = "CompiledFxGraph"
GRAPH_LAUNCH = "GraphLaunch"          # the runtime event of a CUDA graph replay: cudaGraphLaunch (hipGraphLaunch)
LAYER_ORDER = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "fc_in", "fc_out")
MATMULS = {"aten::mm": 1, "aten::addmm": 2, "aten::_addmm_activation": 2}   # index of the (in, out) operand
SDPA = ("aten::_scaled_dot_product", "aten::scaled_dot_product")
NORM_AFTER = {"q_proj": "input_norm", "k_proj": "input_norm", "v_proj": "input_norm", "gate_proj": "post_attention_norm",
              "up_proj": "post_attention_norm", "fc_in": "post_attention_norm", "lm_head": "final_norm"}


def matmul_shapes(spec) -> dict[str, tuple[int, int]]:
    """(in, out) of each matmul theory names, from the model's shapes."""
    d, q, kv = spec.hidden_size, spec.num_attention_heads * spec.head_dim, spec.num_key_value_heads * spec.head_dim
    i = spec.intermediate_size
    shapes = {"q_proj": (d, q), "k_proj": (d, kv), "v_proj": (d, kv), "o_proj": (q, d), "lm_head": (d, spec.vocab_size)}
    if getattr(spec, "mlp", "gated") == "gated":
        shapes.update({"gate_proj": (d, i), "up_proj": (d, i), "down_proj": (i, d)})
    else:
        shapes.update({"fc_in": (d, i), "fc_out": (i, d)})
    return shapes


class MatmulNamer:
    """Names extern matmuls by shape, ties broken by their order within a layer."""

    def __init__(self, spec):
        self.shapes = matmul_shapes(spec)
        self.head_dim = spec.head_dim
        self.cursor = -1
        self.bmm_seen = 0

    def name(self, aten: str, input_shapes) -> str:
        if aten == "aten::bmm":                    # materialized attention compiled: Q·Kᵀ then P·V
            b = input_shapes[1] if input_shapes and len(input_shapes) > 1 else []
            op = ("attn_values" if len(b) == 3 and b[-1] == self.head_dim and b[-2] != self.head_dim else
                  "attn_scores" if len(b) == 3 and b[-2] == self.head_dim and b[-1] != self.head_dim else
                  ("attn_scores", "attn_values")[self.bmm_seen % 2])
            self.bmm_seen = 0 if op == "attn_values" else 1
            return op
        k = MATMULS[aten]
        if not input_shapes or len(input_shapes) <= k or len(input_shapes[k]) != 2:
            return UNATTRIBUTED
        io = tuple(input_shapes[k])
        cands = [op for op, s in self.shapes.items() if s == io]
        if len(cands) <= 1:
            op = cands[0] if cands else UNATTRIBUTED
        else:
            order = [op for op in LAYER_ORDER if op in cands]
            pos = [LAYER_ORDER.index(op) for op in order]
            after = [o for o, p in zip(order, pos) if p > self.cursor]
            op = (after or order)[0]
        if op in LAYER_ORDER:                      # the layer's last matmul starts the next layer's order
            self.cursor = -1 if op in ("down_proj", "fc_out") else LAYER_ORDER.index(op)
        return op


def _is_unit(e) -> bool:
    """A step's unit of work: a direct child of a CompiledFxGraph call, or an aten op with no parent (a graph
    break runs it outside any graph)."""
    p = e.cpu_parent
    return (p is not None and GRAPH_CALL in p.name) or (p is None and e.name.startswith("aten::"))


def _inside_unit(e) -> bool:
    p = e.cpu_parent
    while p is not None:
        if _is_unit(p):
            return True
        p = p.cpu_parent
    return False


def _time_us(e, cuda: bool, total: bool) -> float:
    if cuda:
        return e.device_time_total if total else e.self_device_time_total
    return e.cpu_time_total if total else e.self_cpu_time_total


def attribute_compiled(events, spec, cuda: bool = False) -> tuple[dict, float]:
    """({op or group: {time_s, calls, kernel, input_shapes}}, total seconds) for one compiled pass."""
    device_kernels = [e for e in events if cuda and _is_device(e)]
    events = [e for e in events if not (cuda and _is_device(e))]
    namer = MatmulNamer(spec)
    units = []                                       # (event, op-or-members, in_graph)
    for e in sorted(events, key=lambda e: e.time_range.start):
        if not _is_unit(e):
            continue
        in_graph = e.cpu_parent is not None
        if e.name in MATMULS or e.name == "aten::bmm":
            units.append((e, [namer.name(e.name, e.input_shapes)], in_graph))
        elif e.name.startswith(SDPA):
            units.append((e, ["attn_core"], in_graph))
        elif e.name == "aten::embedding":
            units.append((e, ["embedding"], in_graph))
        elif is_generated_kernel(e.name):
            units.append((e, kernel_members(e.name)[0], in_graph))
        else:
            units.append((e, [], in_graph))
    launched = any(GRAPH_LAUNCH in e.name for e, _, _ in units)
    replay = cuda and bool(device_kernels) and (launched or not units)
    staged = []
    if replay:
        # CUDA graphs: one replay launches every kernel, so no CPU op per kernel. Under the graph call a replay
        # (cudagraph_trees CUDAGraphNode.run) copies the inputs into the graph's buffers (aten::_foreach_copy_)
        # and launches the graph (the runtime event cudaGraphLaunch). The graph's device kernels are named
        # alone: Inductor's by their names, the rest (cuBLAS, attention) stay unattributed; the staging ops'
        # own kernels (the input copy) are framework. The wrappers' device time is these same kernels (the
        # profiler hangs them on the CPU op that launched them): no framework row from them (no double count).
        staged = [e for e, _, _ in units if GRAPH_LAUNCH not in e.name]
        own = {i for e in staged for i in _ids_within(e)}
        units = [(k, kernel_members(k.name)[0] if is_generated_kernel(k.name) else [], True) for k in device_kernels
                 if getattr(k, "linked_correlation_id", 0) not in own]
    _name_norms(units)
    per = defaultdict(lambda: {"time_s": 0.0, "calls": 0, "kernel": "", "input_shapes": ""})
    total = 0.0
    for e, members, _ in units:
        members = [m for m in members if m != UNATTRIBUTED]
        op = group_name(members)
        rec = per[op]
        t = (e.device_time_total if cuda and _is_device(e) else _time_us(e, cuda, total=True)) / 1e6
        rec["time_s"] += t
        rec["calls"] += 1
        if e.name not in rec["kernel"].split(" | "):
            rec["kernel"] = (rec["kernel"] + " | " + e.name if rec["kernel"] else e.name)[:400]
        if not rec["input_shapes"] and getattr(e, "input_shapes", None):
            rec["input_shapes"] = str(e.input_shapes)[:200]
        total += t
    fw = [] if replay else [e for e in events if not _is_unit(e) and not _inside_unit(e)]
    if fw:
        total += _add_framework(per, fw, cuda, False, "guards, compiled region, the graph's Python wrapper")
    if staged:
        total += _add_framework(per, staged, cuda, True,
                                "the replay's staging: " + " | ".join(sorted({e.name for e in staged}))[:380])
    return dict(per), total


def _add_framework(per: dict, events, cuda: bool, whole: bool, what: str) -> float:
    """The framework row gains these events' time (their whole span when `whole`); returns the row's time."""
    rec = per[FRAMEWORK]
    for e in events:
        rec["time_s"] += _time_us(e, cuda, total=whole) / 1e6
        rec["calls"] += 1
    rec["kernel"] = what
    return rec["time_s"]


def _ids_within(e) -> set:
    """The profiler ids of an event and every CPU event under it (a device kernel names its launcher's id as
    its linked_correlation_id)."""
    out, stack = set(), [e]
    while stack:
        x = stack.pop()
        out.add(getattr(x, "id", None))
        stack.extend(getattr(x, "cpu_children", None) or [])
    return out - {None}


def _is_device(e) -> bool:
    dt = getattr(e, "device_type", None)
    return dt is not None and getattr(dt, "name", str(dt)).upper().endswith("CUDA")


def _name_norms(units) -> None:
    """Give each NORM placeholder its theory name from the next matmul, and the residual add it reads."""
    seen_norm, add_since_matmul = False, False
    norms = [i for i, (_, m, _) in enumerate(units) if NORM in m]
    # Without a named matmul after it (a CUDA graph replay names no GEMM): by order, two per layer, then the final.
    by_order = {i: ("final_norm" if k == len(norms) - 1 and len(norms) % 2 else
                    ("input_norm", "post_attention_norm")[k % 2]) for k, i in enumerate(norms)}
    for i, (e, members, in_graph) in enumerate(units):
        if members == ["residual_add"]:
            add_since_matmul = True
        if any(m in NORM_AFTER or m in ("o_proj", "down_proj", "fc_out") for m in members):
            add_since_matmul = False
        if NORM not in members:
            continue
        nxt = next((m[0] for _, m, _ in units[i + 1:] if m and m[0] in NORM_AFTER), None)
        members[members.index(NORM)] = NORM_AFTER[nxt] if nxt else by_order[i]
        if seen_norm and not add_since_matmul:
            members.append("residual_add")
        seen_norm = True


def row_group(op: str) -> str:
    from bench.profiling.compiled_names import members_of
    return FRAMEWORK if op == FRAMEWORK else group_of_members(members_of(op))
