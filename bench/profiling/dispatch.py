"""Count the aten ops one forward pass dispatches: the n_dispatch of the overhead model, eager (a
TorchDispatchMode) or compiled (torch.profiler), as the execution mode runs the pass."""
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from bench.model import Passes, new_cache
from bench.modes import mode


class DispatchCounter(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 1
        return func(*args, **(kwargs or {}))


def count_dispatches(model, input_ids, cache: str, max_cache_len: int | None) -> tuple[int, int]:
    """Ops dispatched by the prefill and by the first decode step (later steps dispatch the same ops)."""
    run = Passes(model, new_cache(model, cache, max_cache_len))
    counts = []
    tokens = input_ids
    with torch.inference_mode():
        for _ in range(2):
            with DispatchCounter() as c:
                out = run(tokens)
            counts.append(c.count)
            tokens = out.logits[:, -1].argmax(-1, keepdim=True)
    run.check()
    return counts[0], counts[1]


def count_ops(model, input_ids, cache: str, max_cache_len: int | None, execution: str) -> tuple[int, int]:
    """n_dispatch of (prefill, first decode step) as the mode runs them: eager passes counted as eager."""
    m = mode(execution)
    if not m.compiled:
        return count_dispatches(model, input_ids, cache, max_cache_len)
    compiled = count_compiled_ops(model, input_ids, cache, max_cache_len)
    if m.decode_only:            # the eager prefill alone: a dispatch mode would break the compiled step
        run = Passes(model, new_cache(model, cache, max_cache_len))
        with torch.inference_mode(), DispatchCounter() as c:
            run(input_ids)
        run.check()
        return c.count, compiled[1]
    return compiled


def count_compiled_ops(model, input_ids, cache: str, max_cache_len: int | None) -> tuple[int, int]:
    """Ops a compiled forward dispatches (prefill, first decode step), counted with torch.profiler: the
    kernels and extern calls directly inside each CompiledFxGraph call, plus aten ops run outside any graph
    (graph breaks). A TorchDispatchMode, which counts eager dispatches, would disable the compiled code."""
    run = Passes(model, new_cache(model, cache, max_cache_len))
    counts, tokens = [], input_ids
    with torch.inference_mode():
        for _ in range(2):
            with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
                out = run(tokens)
            counts.append(count_graph_ops(prof.events()))
            tokens = out.logits[:, -1].argmax(-1, keepdim=True)
    run.check()
    return counts[0], counts[1]


def count_graph_ops(events) -> int:
    n = 0
    for e in events:
        parent = e.cpu_parent
        if parent is not None and "CompiledFxGraph" in parent.name:
            n += 1
        elif parent is None and e.name.startswith("aten::"):
            n += 1
    return n
