"""Allocation traces: the CPU profiler's events and (with a stand-in) CUDA's memory history, into replayable rows."""
import time

import pytest
import torch

from bench.model import build_model
from bench.profiling.alloctrace import TraceBuilder, pass_of, snapshot_events
from bench.store.traces import read_trace, trace_text
from bench.profiling.cpumem import cpu_memory_and_trace
from bench.profiling.cudatrace import cuda_memory_and_trace, trace_from_snapshot
from bench.sweep import Point
from theory.kvrun import step_states


@pytest.fixture(scope="module")
def tiny():
    p = Point(hidden_size=64, num_hidden_layers=2, head_dim=16, vocab_size=256, prompt_len=8, generated=6)
    model = build_model(p.spec(), "cpu", "fp32")
    return p, model, torch.randint(0, 256, (1, 8))


def test_builder_pairs_frees_with_allocs_and_skips_unknown_blocks():
    b = TraceBuilder("pid")
    b.add_weights([4096])
    b.add(0, 100, addr=7)
    b.add(1, -100, addr=7)
    b.add(1, -64, addr=99)                     # allocated before recording began: left out
    assert [(r["phase"], r["step"], r["action"], r["size_bytes"], r["addr_id"]) for r in b.rows] == [
        ("weights", -1, "alloc", 4096, 0), ("prefill", 0, "alloc", 100, 1), ("decode", 0, "free", 100, 1)]
    assert pass_of(5, [(10, 0), (20, 1)]) == 0 and pass_of(25, [(10, 0), (20, 1)]) == 1


def test_cpu_trace_replays_to_the_cache_growth(tiny, tmp_path):
    p, model, ids = tiny
    passes, trace, kv = cpu_memory_and_trace(model, ids, p.generated, p.cache, p.max_cache_len, "pid")
    assert trace[0]["phase"] == "weights" and {r["phase"] for r in trace} == {"weights", "prefill", "decode"}
    seen = set()
    for r in trace:                            # every free pairs with an earlier alloc
        assert r["action"] == "alloc" or r["addr_id"] in seen
        seen.add(r["addr_id"])
    path = tmp_path / "t.csv"
    path.write_text(trace_text(trace))
    states = [s for s in step_states(read_trace(path)) if s["phase"] != "weights"]
    assert len(states) == p.generated == len(kv)
    assert all(s["reserved_bytes"] >= s["allocated_bytes"] >= s["requested_bytes"] for s in states)
    # live bytes after each pass grow by the cache's growth (the logits and token ids are replaced, not added)
    growth = [b["requested_bytes"] - a["requested_bytes"] for a, b in zip(states[1:], states[2:])]
    assert growth == [b - a for a, b in zip(kv[1:], kv[2:])]


class _Memory:
    def __init__(self, log):
        self.log, self.on = log, False

    def _record_memory_history(self, enabled="all", **kw):
        self.on = enabled is not None

    def _snapshot(self):
        return {"device_traces": [self.log]}


class StandInCuda:
    """torch.cuda's few calls, on CPU: each synchronize() inside a pass appends an alloc then frees it next time."""

    def __init__(self):
        self.log, self.n = [], 0
        self.memory = _Memory(self.log)

    def synchronize(self):
        if self.memory.on:
            t = time.time_ns() / 1000
            if self.n % 2:
                self.log.append({"action": "free_requested", "addr": 1000 + self.n - 1, "size": 600, "time_us": t})
                self.log.append({"action": "free_completed", "addr": 1000 + self.n - 1, "size": 600, "time_us": t})
            else:
                self.log.append({"action": "alloc", "addr": 1000 + self.n, "size": 600, "time_us": t + 1})
            self.n += 1

    def memory_allocated(self):
        return 600 * (self.n % 2)

    def memory_reserved(self):
        return 2 << 20


def test_cuda_branch_turns_the_snapshot_into_rows_with_measured_reserved(tiny):
    p, model, ids = tiny
    cuda = StandInCuda()
    measured, trace, kv = cuda_memory_and_trace(model, ids, p.generated, p.cache, p.max_cache_len, "pid", cuda=cuda)
    assert len(measured) == len(kv) == p.generated and not cuda.memory.on       # history switched off again
    marks = [r for r in trace if r["action"] == "reserved"]
    assert len(marks) == p.generated and all(r["size_bytes"] == 2 << 20 for r in marks)
    allocs = [r for r in trace if r["action"] == "alloc" and r["phase"] != "weights"]
    frees = [r for r in trace if r["action"] == "free"]
    assert allocs and frees and all(r["size_bytes"] == 600 for r in allocs + frees)
    states = step_states(trace)
    assert states[-1]["measured_reserved_bytes"] == 2 << 20


def test_snapshot_events_use_completed_frees_only():
    snap = {"device_traces": [[{"action": "alloc", "addr": 1, "size": 10, "time_us": 1.0},
                               {"action": "segment_alloc", "addr": 0, "size": 2 << 20, "time_us": 0.5},
                               {"action": "free_requested", "addr": 1, "size": 10, "time_us": 2.0},
                               {"action": "free_completed", "addr": 1, "size": 10, "time_us": 2.0}]]}
    assert snapshot_events(snap) == [(1.0, 10, 1), (2.0, -10, 1)]
    rows = trace_from_snapshot("pid", [], snap, [(0.0, 0), (1.5, 1)], [{"reserved_bytes": 5}, {"reserved_bytes": 6}])
    assert [(r["phase"], r["action"]) for r in rows] == [("prefill", "alloc"), ("prefill", "reserved"),
                                                         ("decode", "free"), ("decode", "reserved")]
