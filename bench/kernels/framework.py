"""The framework's own cost per pass, measured directly: the model's module path at shapes too small for the
kernels to cost anything.

A tiny model keeps the point's structure (layers, heads, kv heads, attention implementation, cache, batch,
prompt and generated tokens, so the same modules, hooks, masks, cache object and Python run) with head_dim 8,
an MLP of 16 and a vocabulary of 64. Its measured pass time minus its own kernels, timed alone the same way as
the point's, is what transformers and torch add around the kernels: nothing is fitted. The tiny trajectories
are repeated under the points' own stopping rule (bench/timing/repeats.py): three repeats left the framework cost of one
structure moving 0.5-3 ms between runs on this box.
"""
import dataclasses
import statistics

import torch

from bench.model import build_model
from bench.profiling.dispatch import count_dispatches
from bench.kernels.plan import compose_rows, kernel_sums, passes
from bench.timing.repeats import collect
from bench.timing.stats import StopRule
from bench.timing.trajectory import run_trajectory
from theory.model import ModelSpec

TINY_HEAD_DIM, TINY_INTER, TINY_VOCAB = 8, 16, 64
RULE = StopRule(min_repeats=6, max_repeats=30, max_point_s=1.0)      # tiny trajectories: ~2 ms per pass
FRAMEWORK_COLUMNS = ["point_id", "phase", "step", "tiny_time_s", "tiny_kernels_s", "framework_s",
                     "tiny_n_dispatch", "framework_per_dispatch_s"]


def tiny_spec(spec: ModelSpec) -> ModelSpec:
    h = spec.num_attention_heads
    return dataclasses.replace(spec, name=f"tiny-{spec.name}", hidden_size=h * TINY_HEAD_DIM, head_dim=TINY_HEAD_DIM,
                               intermediate_size=TINY_INTER, vocab_size=TINY_VOCAB, tie_word_embeddings=False)


def framework_rows(point_id: str, spec: ModelSpec, device, kcache, batch: int, prompt_len: int, generated: int,
                   dtype: str, attention: str, cache: str, max_cache_len: int | None, rule: StopRule = RULE) -> list[dict]:
    tiny = tiny_spec(spec)
    model = build_model(tiny, device.torch_device, dtype, attention)
    gen = torch.Generator(device="cpu").manual_seed(1)
    ids = torch.randint(0, tiny.vocab_size, (batch, prompt_len), generator=gen).to(device.torch_device)
    run = lambda: run_trajectory(model, device, ids, generated, cache, max_cache_len)
    run()                                                  # warm: lazy init, allocator
    times = [t.times_s for t in collect(run, rule).repeats]
    n_dispatch = count_dispatches(model, ids, cache, max_cache_len)
    del model
    shapes = passes(tiny, batch, prompt_len, generated, dtype, attention, cache, max_cache_len)
    return framework_table(point_id, times, kernel_sums(compose_rows(point_id, shapes, kcache, "llc")), n_dispatch)


def framework_table(point_id: str, times: list[list[float]], kernel_sums_s: dict, n_dispatch: list[int],
                    valid: bool = True) -> list[dict]:
    """Per pass: the tiny model's median pass time (over the repeats in `times`, one list of passes each), its
    own kernels timed alone, and their difference, the framework's cost (None where not `valid`)."""
    rows = []
    for i in range(len(times[0])):
        phase, step = ("prefill", 0) if i == 0 else ("decode", i - 1)
        t = statistics.median(r[i] for r in times)
        k = kernel_sums_s[(phase, step)]
        nd = n_dispatch[0 if i == 0 else 1]
        rows.append({"point_id": point_id, "phase": phase, "step": step, "tiny_time_s": t, "tiny_kernels_s": k,
                     "framework_s": t - k if valid else None, "tiny_n_dispatch": nd,
                     "framework_per_dispatch_s": (t - k) / nd if valid else None})
    return rows
