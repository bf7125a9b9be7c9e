"""Execution modes: how the forward runs (eager, torch.compile, compiled static cache, CUDA graphs).

`compile` compiles the whole forward with a dynamic cache (dynamo marks the growing length dynamic after it
changes once). `compile-static` uses a static cache and compiles the decode step only, once (fullgraph, shapes
fixed), as transformers' own generate does with cache_implementation="static"; the prefill runs eager, so its
rows are eager prefill (StaticCache marks its tensors with torch._dynamo.mark_static_address). `cudagraphs`
adds mode="reduce-overhead" (CUDA graph trees: one replay per step, torch.compiler.cudagraph_mark_step_begin
before each call).

Compilation is watched with dynamo's counters (torch._dynamo.utils.counters["stats"]["unique_graphs"]): the
warm-up runs until a trajectory compiles nothing new, and a graph compiled during the timed trajectories is a
recompilation, which flags the point instead of being averaged in. A `cudagraphs` point is also checked to
have replayed graphs: Inductor counts each graph it could not put in a CUDA graph
(torch._dynamo.utils.counters["inductor"]["cudagraph_skips"], bumped by
torch/_inductor/cudagraph_utils.py log_cudagraph_skip_and_bump_counter and output_code.py), and the CUDA graph
trees (torch/_inductor/cudagraph_trees.py) hold one node per graph recorded: a node recorded during the timed
trajectories is a re-recording (a static input at a new address, say), which no dynamo counter sees.
"""
import time
from dataclasses import dataclass, field

from theory.modes import EXECUTIONS        # the names (and what theory predicts of each) live in theory

MAX_SETTLE_TRAJECTORIES = 12          # a mode still compiling after this many warm-ups is flagged, not waited on
# On CPU each inductor kernel records itself for torch.profiler (cpp.enable_kernel_profile), so the compiled
# graph's ops can be counted; `mode` and `options` are exclusive, hence options only where there is no mode.
_PROFILED = {"options": {"cpp.enable_kernel_profile": True}}


@dataclass(frozen=True)
class ExecutionMode:
    """Everything bench does differently per mode, in one row; consulted wherever the mode matters."""
    name: str
    compile_kwargs: dict | None = field(default=None, hash=False)   # torch.compile arguments; None: eager
    decode_only: bool = False     # compiled for the one-token step; the prefill runs eager (needs a static cache)
    cuda_only: bool = False       # CUDA graph trees: torch.compiler.cudagraph_mark_step_begin before each step
    # eager: module hooks attribute the profile, CPU memory from the profiler's events, every op's kernel timed
    # alone (in rounds between the repeats when paired), dispatches counted with a TorchDispatchMode. Compiled:
    # Inductor's kernels named by theory's ops, the extern kernels alone plus a tiny compiled model for the
    # framework, ops counted with torch.profiler.

    @property
    def compiled(self) -> bool:
        return self.compile_kwargs is not None

    @property
    def profiler(self) -> str:
        """How a point's profile is attributed: "hooks" (module hooks) or "compiled" (Inductor's kernel names)."""
        return "compiled" if self.compiled else "hooks"

    @property
    def cpu_memory_events(self) -> bool:
        """CPU memory from the profiler's events (bench/profiling/cpumem.py): eager passes only."""
        return not self.compiled

    @property
    def pairs_kernels(self) -> bool:
        """The point's kernels may be timed in rounds between its repeats (bench/kernels/paired.py)."""
        return not self.compiled

    def compiled_pass(self, phase: str) -> bool:
        """Whether this pass runs compiled (a decode-only mode's prefill runs eager)."""
        return self.compiled and not (phase == "prefill" and self.decode_only)


MODES = {m.name: m for m in (
    ExecutionMode("eager"),
    ExecutionMode("compile", {"fullgraph": False, "dynamic": None, **_PROFILED}),
    ExecutionMode("compile-static", {"fullgraph": True, "dynamic": False, **_PROFILED}, decode_only=True),
    ExecutionMode("cudagraphs", {"fullgraph": True, "dynamic": False, "mode": "reduce-overhead"}, decode_only=True,
                  cuda_only=True),
)}
DECODE_ONLY = tuple(n for n, m in MODES.items() if m.decode_only)      # the same names as theory's STATIC_EXECUTIONS


def mode(execution: str) -> ExecutionMode:
    if execution not in MODES:
        raise ValueError(f"execution must be one of {', '.join(EXECUTIONS)}, got {execution!r}")
    return MODES[execution]


def check_execution(execution: str, cache: str, device_kind: str | None = None) -> str | None:
    """The one-line reason a point cannot run, or None. Torch-free (sweep validation calls it)."""
    if execution not in MODES:
        return f"execution must be one of {', '.join(EXECUTIONS)}, got {execution!r}"
    m = MODES[execution]
    if m.decode_only and cache != "static":
        return f"execution {execution} needs cache \"static\", got {cache!r}"
    if m.cuda_only and device_kind is not None and device_kind != "cuda":
        return f"execution {execution} needs a CUDA device; this run is on {device_kind}"
    return None


def compile_kwargs(execution: str) -> dict:
    """torch.compile arguments per mode (torch.compile docs: fullgraph, dynamic, mode)."""
    kwargs = MODES[execution].compile_kwargs if execution in MODES else None
    if kwargs is None:
        raise ValueError(f"no compilation for execution {execution!r}")
    return dict(kwargs)


def prepare(model, execution: str, device_kind: str) -> None:
    """Replace model.forward in place by its compiled form (eager: nothing). Raises on a mode the device lacks."""
    m = mode(execution)
    if not m.compiled:
        return
    import torch
    reason = check_execution(execution, "static" if m.decode_only else "dynamic", device_kind)
    if reason:
        raise ValueError(reason)
    # A process compiles many models of one class (the sweep's points, their tiny framework models): dynamo keeps
    # each one's graphs on the same code object, up to torch._dynamo.config.recompile_limit (8); past it a
    # fullgraph compile fails and any other runs eager, silently. Earlier models are gone: start afresh.
    torch._dynamo.reset()
    eager_forward = model.forward
    compiled = torch.compile(eager_forward, **compile_kwargs(execution))
    if not m.decode_only:
        model.forward = compiled
        return

    def forward(*args, **kwargs):
        if kwargs["input_ids"].shape[-1] > 1:           # prefill: eager (the decode step is what is compiled)
            return eager_forward(*args, **kwargs)
        if m.cuda_only:
            # CUDA graph trees reuse output memory between replays: mark each step a new iteration.
            torch.compiler.cudagraph_mark_step_begin()
        return compiled(*args, **kwargs)
    model.forward = forward


def graphs_compiled() -> int:
    from torch._dynamo.utils import counters
    return int(counters["stats"]["unique_graphs"])


def cudagraph_skips() -> int:
    """Graphs Inductor ran without a CUDA graph so far in this process (each logs its reason)."""
    from torch._dynamo.utils import counters
    return int(counters["inductor"]["cudagraph_skips"])


def cudagraphs_recorded() -> int:
    """CUDA graphs recorded so far by this thread's CUDA graph trees, on every device: the CUDAGraphNodes under
    each tree manager's roots (warm-up runs are not nodes there). 0 where no tree was ever made (the CPU)."""
    from torch._inductor import cudagraph_trees
    containers = cudagraph_trees.get_obj(cudagraph_trees.local, "tree_manager_containers")
    n = 0
    for container in list(containers.values()):
        manager = getattr(container, "tree_manager", None)
        stack = [node for nodes in (getattr(manager, "roots", None) or {}).values() for node in nodes]
        while stack:
            node = stack.pop()
            n += 1
            stack.extend(child for kids in node.children.values() for child in kids)
    return n


class CompileWatch:
    """Call tick() after each untimed trajectory (cold, warm-ups): it says whether compilation has settled
    and keeps the wall time of the trajectories that compiled, so compile time stays apart from timed steps.
    For a CUDA-graph mode it also counts the graphs Inductor skipped and the graphs recorded after settling."""

    def __init__(self, execution: str):
        self.execution = execution
        self.graphs_start = self.graphs_settled = graphs_compiled()
        self.cudagraphs = mode(execution).cuda_only
        self.skips_start = cudagraph_skips()
        self.recorded_settled = cudagraphs_recorded() if self.cudagraphs else 0
        self.compiling_wall_s: list[float] = []
        self.n_ticks = 0
        self._t = time.perf_counter()

    def tick(self) -> bool:
        now, graphs = time.perf_counter(), graphs_compiled()
        new = graphs - self.graphs_settled
        if new:
            self.compiling_wall_s.append(now - self._t)
        self.graphs_settled, self._t = graphs, now
        recorded = cudagraphs_recorded() if self.cudagraphs else 0
        new += recorded - self.recorded_settled             # a graph recorded is not settled yet either
        self.recorded_settled = recorded
        self.n_ticks += 1
        return not mode(self.execution).compiled or new == 0 or self.n_ticks >= MAX_SETTLE_TRAJECTORIES

    def cudagraph_skips(self) -> int:
        """Graphs of this point that ran without a CUDA graph (a CUDA-graph mode only; else 0)."""
        return cudagraph_skips() - self.skips_start if self.cudagraphs else 0

    def rerecords_since_settled(self) -> int:
        """CUDA graphs recorded after warm-up settled, i.e. during the timed (or later) trajectories."""
        return cudagraphs_recorded() - self.recorded_settled if self.cudagraphs else 0

    def graphs(self) -> int:
        return self.graphs_settled - self.graphs_start

    def recompiles_since_settled(self) -> int:
        return graphs_compiled() - self.graphs_settled

    def compile_s(self, steady_trajectory_s: float) -> float | None:
        """Wall time of the compiling trajectories less what those trajectories would take compiled."""
        if not mode(self.execution).compiled:
            return None
        return max(0.0, sum(self.compiling_wall_s) - steady_trajectory_s * len(self.compiling_wall_s))
