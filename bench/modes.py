"""Execution modes: how the forward runs (eager, torch.compile, compiled static cache, CUDA graphs).

`compile` compiles the whole forward with a dynamic cache (dynamo marks the growing length dynamic after it
changes once). `compile-static` uses a static cache and compiles the decode step only, once (fullgraph, shapes
fixed), as transformers' own generate does with cache_implementation="static"; the prefill runs eager, so its
rows are eager prefill (StaticCache marks its tensors with torch._dynamo.mark_static_address). `cudagraphs`
adds mode="reduce-overhead" (CUDA graph trees: one replay per step, torch.compiler.cudagraph_mark_step_begin
before each call).

Compilation is watched with dynamo's counters (torch._dynamo.utils.counters["stats"]["unique_graphs"]): the
warm-up runs until a trajectory compiles nothing new, and a graph compiled during the timed trajectories is a
recompilation, which flags the point instead of being averaged in.
"""
import time

from theory.modes import CUDA_ONLY, EXECUTIONS, STATIC_EXECUTIONS        # the names live in theory

DECODE_ONLY = STATIC_EXECUTIONS        # compiled for the one-token step; prefill runs eager
MAX_SETTLE_TRAJECTORIES = 12          # a mode still compiling after this many warm-ups is flagged, not waited on


def check_execution(execution: str, cache: str, device_kind: str | None = None) -> str | None:
    """The one-line reason a point cannot run, or None. Torch-free (sweep validation calls it)."""
    if execution not in EXECUTIONS:
        return f"execution must be one of {', '.join(EXECUTIONS)}, got {execution!r}"
    if execution in STATIC_EXECUTIONS and cache != "static":
        return f"execution {execution} needs cache \"static\", got {cache!r}"
    if execution in CUDA_ONLY and device_kind is not None and device_kind != "cuda":
        return f"execution {execution} needs a CUDA device; this run is on {device_kind}"
    return None


def compile_kwargs(execution: str) -> dict:
    """torch.compile arguments per mode (torch.compile docs: fullgraph, dynamic, mode)."""
    # On CPU each inductor kernel records itself for torch.profiler (cpp.enable_kernel_profile), so the
    # compiled graph's ops can be counted; `mode` and `options` are exclusive, hence options only here.
    profiled = {"options": {"cpp.enable_kernel_profile": True}}
    if execution == "compile":
        return {"fullgraph": False, "dynamic": None, **profiled}
    if execution == "compile-static":
        return {"fullgraph": True, "dynamic": False, **profiled}
    if execution == "cudagraphs":
        return {"fullgraph": True, "dynamic": False, "mode": "reduce-overhead"}
    raise ValueError(f"no compilation for execution {execution!r}")


def prepare(model, execution: str, device_kind: str) -> None:
    """Replace model.forward in place by its compiled form (eager: nothing). Raises on a mode the device lacks."""
    if execution == "eager":
        return
    import torch
    reason = check_execution(execution, "static" if execution in STATIC_EXECUTIONS else "dynamic", device_kind)
    if reason:
        raise ValueError(reason)
    # A process compiles many models of one class (the sweep's points, their tiny framework models): dynamo keeps
    # each one's graphs on the same code object, up to torch._dynamo.config.recompile_limit (8); past it a
    # fullgraph compile fails and any other runs eager, silently. Earlier models are gone: start afresh.
    torch._dynamo.reset()
    eager_forward = model.forward
    compiled = torch.compile(eager_forward, **compile_kwargs(execution))
    if execution not in DECODE_ONLY:
        model.forward = compiled
        return

    def forward(*args, **kwargs):
        if kwargs["input_ids"].shape[-1] > 1:           # prefill: eager (the decode step is what is compiled)
            return eager_forward(*args, **kwargs)
        if execution in CUDA_ONLY:
            # CUDA graph trees reuse output memory between replays: mark each step a new iteration.
            torch.compiler.cudagraph_mark_step_begin()
        return compiled(*args, **kwargs)
    model.forward = forward


def graphs_compiled() -> int:
    from torch._dynamo.utils import counters
    return int(counters["stats"]["unique_graphs"])


class CompileWatch:
    """Call tick() after each untimed trajectory (cold, warm-ups): it says whether compilation has settled
    and keeps the wall time of the trajectories that compiled, so compile time stays apart from timed steps."""

    def __init__(self, execution: str):
        self.execution = execution
        self.graphs_start = self.graphs_settled = graphs_compiled()
        self.compiling_wall_s: list[float] = []
        self.n_ticks = 0
        self._t = time.perf_counter()

    def tick(self) -> bool:
        now, graphs = time.perf_counter(), graphs_compiled()
        new = graphs - self.graphs_settled
        if new:
            self.compiling_wall_s.append(now - self._t)
        self.graphs_settled, self._t = graphs, now
        self.n_ticks += 1
        return self.execution == "eager" or new == 0 or self.n_ticks >= MAX_SETTLE_TRAJECTORIES

    def graphs(self) -> int:
        return self.graphs_settled - self.graphs_start

    def recompiles_since_settled(self) -> int:
        return graphs_compiled() - self.graphs_settled

    def compile_s(self, steady_trajectory_s: float) -> float | None:
        """Wall time of the compiling trajectories less what those trajectories would take compiled."""
        if self.execution == "eager":
            return None
        return max(0.0, sum(self.compiling_wall_s) - steady_trajectory_s * len(self.compiling_wall_s))


def count_ops(model, input_ids, cache: str, max_cache_len: int | None, execution: str) -> tuple[int, int]:
    """n_dispatch of (prefill, first decode step) as the mode runs them: eager passes counted as eager."""
    import torch
    from bench.profiling.dispatch import DispatchCounter, count_dispatches
    from bench.kvcache import new_cache
    if execution == "eager":
        return count_dispatches(model, input_ids, cache, max_cache_len)
    compiled = count_compiled_ops(model, input_ids, cache, max_cache_len)
    if execution in DECODE_ONLY:            # the eager prefill alone: a dispatch mode would break the compiled step
        with torch.inference_mode(), DispatchCounter() as c:
            model(input_ids=input_ids, past_key_values=new_cache(model, cache, max_cache_len), use_cache=True,
                  logits_to_keep=1)
        return c.count, compiled[1]
    return compiled


def count_compiled_ops(model, input_ids, cache: str, max_cache_len: int | None) -> tuple[int, int]:
    """Ops a compiled forward dispatches (prefill, first decode step), counted with torch.profiler: the
    kernels and extern calls directly inside each CompiledFxGraph call, plus aten ops run outside any graph
    (graph breaks). A TorchDispatchMode, which counts eager dispatches, would disable the compiled code."""
    import torch
    from bench.kvcache import new_cache
    past = new_cache(model, cache, max_cache_len)
    counts, tokens = [], input_ids
    with torch.inference_mode():
        for _ in range(2):
            with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
                out = model(input_ids=tokens, past_key_values=past, use_cache=True, logits_to_keep=1)
            counts.append(count_graph_ops(prof.events()))
            tokens = out.logits[:, -1].argmax(-1, keepdim=True)
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


def mode_fields(watch, m) -> dict:
    """Compile time (apart from the timed steps), graphs compiled, and recompilations during the timed and
    memory trajectories: a point that recompiled there is flagged `recompiled`, never averaged in as ok."""
    steady_s = sum(st.median_s for st in m.step_stats())
    recompiles = watch.recompiles_since_settled()
    return {"compile_s": watch.compile_s(steady_s), "graphs_compiled": watch.graphs() + recompiles,
            "recompiles_timed": recompiles, "status": "recompiled" if recompiles else "ok",
            "message": f"{recompiles} graph(s) compiled during the timed trajectories" if recompiles else ""}
