"""A compiled point's kernels and framework cost, measured the way eager points are (bench.kernels).

Compilation leaves the matmuls and the attention kernel as extern calls at the model's own shapes, so those
kernels are the ones bench.kernels times alone for the eager twin (same plan, same kernel cache). Everything
else (norms, rotary, cache write, act·mul, adds, embedding) is fused into Inductor's generated kernels, which
cannot be timed alone: analysis counts them from theory's fused bytes at the box's measured copy bandwidth.

The framework's own cost per compiled pass is measured directly on a tiny model of the point's structure
(bench.kernels.framework.tiny_spec), compiled in the same mode and timed after compilation settles: its pass
time minus its extern kernels timed alone, repeated under the same stopping rule as eager's. It holds dynamo's guards, the compiled region's wrappers, the
Python that calls each kernel, and the generated kernels' fixed cost at shapes too small for their bytes to
matter. Nothing is fitted. A prefill that runs eager (compile-static, cudagraphs) keeps eager's composition.
"""
import torch

from bench import modes
from bench.profiling.dispatch import count_ops
from bench.model import build_model, hold_static_caches
from bench.kernels.framework import RULE, framework_table, tiny_spec
from bench.kernels.plan import compose_rows, kernel_sums, passes
from bench.timing.repeats import collect
from bench.timing.stats import StopRule
from bench.timing import trajectory
from theory.modes import EXTERN_OPS



def compiled_pass(execution: str, phase: str) -> bool:
    return modes.mode(execution).compiled_pass(phase)


def extern_rows(rows: list[dict], execution: str) -> list[dict]:
    """Compose rows as the mode runs them: a compiled pass keeps its extern kernels only."""
    return [r for r in rows if not compiled_pass(execution, r["phase"]) or r["op"] in EXTERN_OPS]


def compiled_framework_rows(point_id: str, spec, device, kcache, batch: int, prompt_len: int, generated: int,
                            dtype: str, attention: str, cache: str, max_cache_len: int | None, execution: str,
                            rule: StopRule = RULE) -> list[dict]:
    tiny = tiny_spec(spec)
    model = build_model(tiny, device.torch_device, dtype, attention)
    modes.prepare(model, execution, device.kind)
    hold_static_caches(model)              # as the point's own compiled model (bench/point/measure.py)
    gen = torch.Generator(device="cpu").manual_seed(1)
    ids = torch.randint(0, tiny.vocab_size, (batch, prompt_len), generator=gen).to(device.torch_device)
    run = lambda: trajectory.run_trajectory(model, device, ids, generated, cache, max_cache_len)
    watch = modes.CompileWatch(execution)
    run()
    while not watch.tick():                                # warm until a trajectory compiles nothing new
        run()
    times = [t.times_s for t in collect(run, rule).repeats]      # the eager framework's stopping rule
    recompiled = watch.recompiles_since_settled()
    n_dispatch = count_ops(model, ids, cache, max_cache_len, execution)
    del model
    shapes = passes(tiny, batch, prompt_len, generated, dtype, attention, cache, max_cache_len)
    sums = kernel_sums(extern_rows(compose_rows(point_id, shapes, kcache, "llc"), execution))
    # a tiny model that recompiled while timed has no framework figure (never a compile's time)
    return framework_table(point_id, times, sums, n_dispatch, valid=not recompiled)
