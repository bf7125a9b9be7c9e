"""CPU memory per pass from the profiler's memory events (profile_memory=True), in a trajectory of its own.

The CPU has no allocator counters, but the profiler records every allocation and free (bytes, signed) with its
time. The cache is created inside the profiled trajectory, so every cache block's allocation and free is seen
(the profiler drops frees of blocks allocated before it started). Walking the events in order gives, per pass,
the bytes allocated and the peak of live bytes — CUDA's allocated peak up to a constant (weights, buffers), so
its growth per token is comparable: a dynamic cache that concatenates itself has old and new copies alive at
once, and the peak grows faster than the cache tensors. The profiler triples a pass's time, so the trajectory
stops after MAX_PROFILED_DECODE decode steps (later rows carry no profiler figures). Peak RSS stays a separate
column (it includes what the C allocator retains).
"""
import torch
from torch.profiler import ProfilerActivity, profile, record_function

from bench.model import Passes, cache_tensor_bytes, new_cache
from bench.profiling.alloctrace import cpu_profiler_events, module_tensors, trace_from_events

MARK = "pass::"
MAX_PROFILED_DECODE = 24       # enough decode steps for a slope per token


def memory_events(prof) -> tuple[list[tuple[int, int, int]], list[tuple[int, int]]]:
    """(start_ns, end_ns, pass index) of each marked pass, and (time_ns, signed bytes) of each CPU memory event."""
    passes, mem = [], []
    for e in prof.profiler.kineto_results.events():
        name = e.name()
        if name.startswith(MARK):
            passes.append((e.start_ns(), e.end_ns(), int(name[len(MARK):])))
        elif name == "[memory]" and e.device_type() == torch.autograd.DeviceType.CPU:
            mem.append((e.start_ns(), e.nbytes()))
    return sorted(passes), sorted(mem)


def per_pass(passes, mem) -> list[dict]:
    out = {i: {"allocated_bytes": 0, "freed_bytes": 0, "peak_live_bytes": None} for _, _, i in passes}
    live, k = 0, 0
    for start, end, i in passes:
        while k < len(mem) and mem[k][0] < start:       # between passes: the argmax, the next token
            live += mem[k][1]
            k += 1
        rec = out[i]
        rec["peak_live_bytes"] = live
        while k < len(mem) and mem[k][0] <= end:
            live += mem[k][1]
            if mem[k][1] > 0:
                rec["allocated_bytes"] += mem[k][1]
            else:
                rec["freed_bytes"] -= mem[k][1]
            rec["peak_live_bytes"] = max(rec["peak_live_bytes"], live)
            k += 1
    return [out[i] for _, _, i in passes]


def cpu_memory_and_trace(model, input_ids, generated: int, cache: str, max_cache_len: int | None, point_id: str = "",
                         max_decode: int = MAX_PROFILED_DECODE) -> tuple[list[dict | None], list[dict], list[int]]:
    """One profiled trajectory: per pass (None past the profiled steps) the allocated bytes and allocation peak,
    the allocation trace (bench.profiling.alloctrace rows), and the cache tensors' bytes after each pass."""
    n = min(generated, max_decode + 1)
    tokens, kv = input_ids, []
    with torch.inference_mode(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        past = new_cache(model, cache, max_cache_len)
        run = Passes(model, past)
        for i in range(n):
            with record_function(f"{MARK}{i}"):
                out = run(tokens)
            tokens = out.logits[:, -1].argmax(-1, keepdim=True)
            kv.append(cache_tensor_bytes(past))
    run.check()
    trace = trace_from_events(point_id, module_tensors(model), *cpu_profiler_events(prof, MARK))
    return per_pass(*memory_events(prof)) + [None] * (generated - n), trace, kv


def cpu_memory_trajectory(model, input_ids, generated: int, cache: str, max_cache_len: int | None) -> list[dict | None]:
    """Per pass (None past the profiled steps): allocated bytes and the allocation peak (live bytes)."""
    return cpu_memory_and_trace(model, input_ids, generated, cache, max_cache_len)[0]


def cpu_memory_fields(passes: list[dict | None] | None, i: int) -> dict:
    """Measurement-row fields for pass i: the profiler's peak stands in for the allocator's absolute peak."""
    if passes is None or passes[i] is None:
        return {}
    return {"mem_allocated_peak_total_bytes": passes[i]["peak_live_bytes"],
            "mem_allocated_step_bytes": passes[i]["allocated_bytes"], "mem_source": "profiler"}
