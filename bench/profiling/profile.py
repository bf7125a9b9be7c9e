"""Attribute measured time to theory's op names with torch.profiler, on profiled trajectories of their own
(never the timed repeats). Also counts each op's FLOPs with FlopCounterMode for a cross-check, and exports
one Chrome/Perfetto trace per profiled step."""
import contextlib
import time
from collections import defaultdict
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile, record_function

from bench.profiling.attribution import EAGER_MATMUL, attribute, group_of
from bench.model import Passes, new_cache

MAX_TRACE_BYTES = 20 * 2**20
PROFILE_COLUMNS = ["point_id", "phase", "step", "context_len", "op", "group", "time_s", "calls", "input_shapes",
                   "share", "step_profiled_s", "step_wall_profiled_s", "step_median_s", "inflation",
                   "flops_counted", "cpu_bytes_allocated", "gpu_idle_fraction", "kernel", "trace"]


def modeling_modules(model, loaded: dict) -> list:
    """The modeling files the model's classes come from (transformers/models/<family>/modeling_<family>.py): each
    family's attention calls its own module-level rotary, repeat_kv and eager attention, so those are the ones to
    label. Only modules already loaded: importing others would grow the heap between profiled steps."""
    names = sorted({type(m).__module__ for m in model.modules()} | {"transformers.models.llama.modeling_llama"})
    return [loaded[n] for n in names if n.startswith("transformers.models.") and n in loaded]


@contextlib.contextmanager
def labelled(model, cache, nvtx=None):
    """Push a labelled range around every module and around the non-module functions theory names
    (and the same NVTX range, for Nsight, when `nvtx` is the device's torch.cuda.nvtx)."""
    import transformers.integrations.sdpa_attention as sdpa_mod
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
    import sys
    stack, handles, patches = [], [], []

    def push(name):
        rf = record_function(name)
        rf.__enter__()
        if nvtx is not None:
            nvtx.range_push(name)
        stack.append(rf)

    def pop():
        if nvtx is not None:
            nvtx.range_pop()
        stack.pop().__exit__(None, None, None)

    def wrap(fn, name):
        def inner(*a, **k):
            push(name)
            try:
                return fn(*a, **k)
            finally:
                pop()
        return inner

    for path, mod in model.named_modules():
        if not path:
            continue
        handles.append(mod.register_forward_pre_hook(lambda m, a, _p=path: push(f"mod::{_p}")))
        handles.append(mod.register_forward_hook(lambda m, a, o: pop()))
    for ns in modeling_modules(model, sys.modules):
        for attr, name in (("apply_rotary_pos_emb", "op::rotary"), ("repeat_kv", "op::repeat_kv"),
                           ("eager_attention_forward", "op::attn_eager")):
            if hasattr(ns, attr):
                patches.append((ns, attr, getattr(ns, attr)))
                setattr(ns, attr, wrap(getattr(ns, attr), name))
    patches.append((sdpa_mod, "repeat_kv", sdpa_mod.repeat_kv))
    sdpa_mod.repeat_kv = wrap(sdpa_mod.repeat_kv, "op::repeat_kv")
    sdpa_orig = ALL_ATTENTION_FUNCTIONS["sdpa"]
    ALL_ATTENTION_FUNCTIONS["sdpa"] = wrap(sdpa_orig, "op::attn_core")
    cache.update = wrap(cache.update, "op::kv_update")
    try:
        yield
    finally:
        for h in handles:
            h.remove()
        for ns, attr, orig in patches:
            setattr(ns, attr, orig)
        ALL_ATTENTION_FUNCTIONS["sdpa"] = sdpa_orig
        del cache.update


def _innermost_range(evt):
    p = evt.cpu_parent
    while p is not None:
        if p.name.startswith(("mod::", "op::")):
            return p
        p = p.cpu_parent
    return None


def attribute_events(events, cuda: bool) -> tuple[dict, float]:
    """Sum self time per theory op over aten events. Returns ({op: {...}}, total self time in seconds)."""
    per_op = defaultdict(lambda: {"time_s": 0.0, "calls": 0, "input_shapes": "", "cpu_bytes_allocated": 0, "kernel": ""})
    eager_seen = defaultdict(int)                # matmuls seen so far inside each eager attention range
    total = 0.0
    for evt in sorted(events, key=lambda e: e.time_range.start):
        if evt.name.startswith(("mod::", "op::", "ProfilerStep")):
            continue
        if getattr(evt, "device_type", None) == torch.autograd.DeviceType.CUDA:
            continue                             # kernels: their time is the self device time of the op that launched them
        self_us = (evt.self_device_time_total if cuda else evt.self_cpu_time_total)
        rng = _innermost_range(evt)
        idx = 0
        if rng is not None and rng.name == "op::attn_eager" and evt.name in EAGER_MATMUL and (
                evt.cpu_parent is rng):
            idx = eager_seen[rng.id]
            eager_seen[rng.id] += 1
        elif rng is not None and rng.name == "op::attn_eager":
            idx = max(0, eager_seen[rng.id] - 1)
        op = attribute(rng.name if rng else None, evt.name, idx)
        rec = per_op[op]
        if op == "attn_core" and not rec["kernel"]:
            rec["kernel"] = sdpa_backend(evt)        # which SDPA backend actually ran ("" for other ops)
        rec["time_s"] += self_us / 1e6
        rec["cpu_bytes_allocated"] += max(0, getattr(evt, "self_cpu_memory_usage", 0) or 0)
        if rng is None or evt.cpu_parent is rng:
            rec["calls"] += 1
            if not rec["input_shapes"] and evt.input_shapes:
                rec["input_shapes"] = str(evt.input_shapes)[:200]
        total += self_us / 1e6
    return dict(per_op), total


# aten's SDPA backends, most specific first (the flash CPU kernel's name contains the CUDA flash one's).
SDPA_BACKENDS = (("_scaled_dot_product_flash_attention_for_cpu", "flash-cpu"),
                 ("_scaled_dot_product_flash_attention", "flash"), ("_scaled_dot_product_efficient_attention", "efficient"),
                 ("_scaled_dot_product_cudnn_attention", "cudnn"), ("_scaled_dot_product_attention_math", "math"),
                 ("_scaled_dot_product_fused_attention_overrideable", "overrideable"))


def _subtree_kernels(evt) -> list[str]:
    """Names of the device kernels an op and the ops under it launched (FunctionEvent.kernels)."""
    out = [k.name for k in evt.kernels]
    for c in evt.cpu_children:
        out += _subtree_kernels(c)
    return out


def sdpa_backend(evt) -> str:
    """For the dispatcher op aten::scaled_dot_product_attention: "<backend>: <backend op>[ / <first kernel>]",
    from the backend op it called (and, on CUDA, the kernel that op launched); "" for any other event."""
    if evt.name != "aten::scaled_dot_product_attention":
        return ""
    todo = list(evt.cpu_children)
    while todo:
        child = todo.pop(0)
        for needle, backend in SDPA_BACKENDS:
            if needle in child.name:
                kernels = _subtree_kernels(child)
                return f"{backend}: {child.name}" + (f" / {kernels[0][:80]}" if kernels else "")
        todo += child.cpu_children
    return "unknown: no backend op under aten::scaled_dot_product_attention"


def gpu_idle_fraction(events) -> float | None:
    """Share of the span from the first to the last kernel in which no kernel runs. The profiler's own user
    annotations (record_function ranges, mirrored on the GPU timeline) are not kernels: torch's profiler
    utilities leave them out of device time too (is_user_annotation)."""
    kernels = sorted((e.time_range.start, e.time_range.end) for e in events
                     if getattr(e, "device_type", None) == torch.autograd.DeviceType.CUDA
                     and not getattr(e, "is_user_annotation", False))
    if not kernels:
        return None
    busy, cur_s, cur_e = 0.0, *kernels[0]
    for s, e in kernels[1:]:
        if s > cur_e:
            busy += cur_e - cur_s
            cur_s, cur_e = s, e
        else:
            cur_e = max(cur_e, e)
    busy += cur_e - cur_s
    span = kernels[-1][1] - kernels[0][0]
    return 1 - busy / span if span > 0 else 0.0


_CPU_SDPA_REGISTERED = False


def _register_cpu_sdpa_formula() -> None:
    """FlopCounterMode has no formula for the CPU fused attention kernel; give it the standard one
    (which, like theirs, counts the full square even when causal)."""
    global _CPU_SDPA_REGISTERED
    if _CPU_SDPA_REGISTERED:
        return
    from torch.utils.flop_counter import register_flop_formula, sdpa_flop_count
    op = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if op is not None:
        try:
            register_flop_formula(op)(lambda q, k, v, *a, out_shape=None, **kw: sdpa_flop_count(q, k, v))
        except RuntimeError:
            pass                                       # already registered by a newer torch
    _CPU_SDPA_REGISTERED = True


def count_flops(model, input_ids, cache: str, max_cache_len) -> dict[tuple[str, int], dict[str, int]]:
    """FLOPs per theory op from FlopCounterMode for the prefill and decode step 0 of a fresh trajectory.
    Module leaves map to op names; the attention module's own FLOPs (scores and values, or the fused kernel)
    go to "attention_core"."""
    from torch.utils.flop_counter import FlopCounterMode
    from bench.profiling.attribution import MODULE_OPS
    _register_cpu_sdpa_formula()
    past = new_cache(model, cache, max_cache_len)
    run = Passes(model, past)
    out_counts, tokens = {}, input_ids
    with torch.inference_mode():
        for key in (("prefill", 0), ("decode", 0)):
            with FlopCounterMode(display=False) as fc:
                out = run(tokens)
            totals = {path: sum(c.values()) for path, c in fc.get_flop_counts().items()}
            per_op = defaultdict(int)
            for path, flops in totals.items():
                leaf = path.rsplit(".", 1)[-1]
                if leaf in MODULE_OPS:                # one entry per layer's module: summed over layers
                    per_op[MODULE_OPS[leaf]] += flops
                elif leaf == "self_attn":             # the attention module's own FLOPs, its projections taken out
                    per_op["attention_core"] += flops - sum(v for p, v in totals.items() if p.startswith(path + "."))
            out_counts[key] = dict(per_op)
            tokens = out.logits[:, -1].argmax(-1, keepdim=True)
    run.check()
    return out_counts


def profile_point(model, device, point_id: str, input_ids, generated: int, cache: str, max_cache_len,
                  step_medians: list[float], trace_dir: Path | None, steps=None) -> list[dict]:
    """Profile the prefill and chosen decode steps (default: the first and the last) of one trajectory."""
    cuda = device.kind == "cuda"
    # The CUDA stand-in of the tests runs on a CPU build of torch, which cannot profile CUDA activity.
    activities = [a for a in [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
                  if a in torch.profiler.supported_activities()]
    chosen = {0} | ({1, generated - 1} if steps is None else set(steps))
    past = new_cache(model, cache, max_cache_len)
    run = Passes(model, past)
    rows, tokens = [], input_ids
    prompt_len = input_ids.shape[1]
    with torch.inference_mode():
        for i in range(generated):
            phase, step = ("prefill", 0) if i == 0 else ("decode", i - 1)
            if i not in chosen:
                out = run(tokens)
                tokens = out.logits[:, -1].argmax(-1, keepdim=True)
                continue
            with labelled(model, past, device.cuda.nvtx if cuda else None), profile(activities=activities, profile_memory=True,
                                                      record_shapes=True) as prof:
                device.sync()
                t0 = time.perf_counter()
                out = run(tokens)
                device.sync()
                wall = time.perf_counter() - t0
            per_op, total = attribute_events(prof.events(), cuda)
            trace = ""
            if trace_dir is not None:
                trace_dir.mkdir(parents=True, exist_ok=True)
                path = trace_dir / f"{point_id}-{phase}-{step}.json"
                prof.export_chrome_trace(str(path))
                if path.stat().st_size > MAX_TRACE_BYTES:
                    path.unlink()
                else:
                    trace = f"traces/{path.name}"
            idle = gpu_idle_fraction(prof.events()) if cuda else None
            median = step_medians[i]
            for op, rec in sorted(per_op.items(), key=lambda kv: -kv[1]["time_s"]):
                rows.append({"point_id": point_id, "phase": phase, "step": step,
                             "context_len": 0 if i == 0 else prompt_len + i - 1, "op": op, "group": group_of(op),
                             "time_s": rec["time_s"], "calls": rec["calls"], "input_shapes": rec["input_shapes"],
                             "share": rec["time_s"] / total if total else 0.0, "step_profiled_s": total,
                             "step_wall_profiled_s": wall, "step_median_s": median, "inflation": wall / median,
                             "flops_counted": None, "cpu_bytes_allocated": rec["cpu_bytes_allocated"],
                             "gpu_idle_fraction": idle, "kernel": rec["kernel"], "trace": trace})
            tokens = out.logits[:, -1].argmax(-1, keepdim=True)
    run.check()
    return rows
