"""CUDA: a trajectory of its own under torch.cuda.memory._record_memory_history, for the allocation trace and the
allocator's own allocated/reserved counters after every pass (synchronized)."""
import time

import torch

from bench.model import Passes, cache_tensor_bytes, new_cache
from bench.profiling.alloctrace import TraceBuilder, module_tensors, pass_of, snapshot_events

MAX_TRACE_ENTRIES = 2_000_000


def has_memory_history(cuda=None) -> bool:
    """Whether this torch.cuda records allocator history (a CPU build under the harness's stand-in GPU does not)."""
    return torch.version.cuda is not None and hasattr(getattr(torch.cuda if cuda is None else cuda, "memory", None), "_record_memory_history")


def cuda_memory_and_trace(model, input_ids, generated: int, cache: str, max_cache_len: int | None, point_id: str = "",
                          cuda=None) -> tuple[list[dict], list[dict], list[int]]:
    """Per pass: measured allocated and reserved bytes (absolute); the trace rows; the cache tensors' bytes.
    `cuda` is torch.cuda (a stand-in in tests)."""
    cuda = torch.cuda if cuda is None else cuda
    measured, kv, starts = [], [], []
    tokens = input_ids
    cuda.synchronize()
    cuda.memory._record_memory_history(enabled="all", context=None, stacks="python", max_entries=MAX_TRACE_ENTRIES)
    try:
        with torch.inference_mode():
            past = new_cache(model, cache, max_cache_len)
            run = Passes(model, past)
            for i in range(generated):
                cuda.synchronize()
                starts.append((time.time_ns() / 1000, i))          # the trace's time_us is epoch microseconds
                out = run(tokens)
                tokens = out.logits[:, -1].argmax(-1, keepdim=True)
                cuda.synchronize()
                measured.append({"allocated_bytes": cuda.memory_allocated(), "reserved_bytes": cuda.memory_reserved()})
                kv.append(cache_tensor_bytes(past))
            run.check()
        snap = cuda.memory._snapshot()
    finally:
        cuda.memory._record_memory_history(enabled=None)
    return measured, trace_from_snapshot(point_id, module_tensors(model), snap, starts, measured), kv


def trace_from_snapshot(point_id: str, weights: list[int], snapshot: dict, starts, measured: list[dict] | None = None,
                        device_index: int = 0) -> list[dict]:
    """Rows from the snapshot's device trace; after each pass's events, a `reserved` row with the allocator's
    measured reserved bytes at its end (when given)."""
    b = TraceBuilder(point_id)
    b.add_weights(weights)
    done = -1
    for t, nbytes, addr in snapshot_events(snapshot, device_index):
        i = pass_of(t, starts)
        while measured is not None and done + 1 < i:
            done += 1
            b.mark(done, measured[done]["reserved_bytes"])
        b.add(i, nbytes, addr)
    while measured is not None and done + 1 < len(measured):
        done += 1
        b.mark(done, measured[done]["reserved_bytes"])
    return b.rows
