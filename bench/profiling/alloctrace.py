"""A pass's allocations and frees, in order, kept compactly so analysis can replay them through theory's model of the
CUDA caching allocator (theory/allocator.py).

One row per event: point_id, phase, step, event_index, action (alloc | free; on CUDA also `reserved`: the allocator's
measured reserved bytes at a pass's end), size_bytes (requested), addr_id (pairs a
free with its alloc; ids count up in order of allocation). The model's weights and buffers come first (phase
`weights`, step -1), in the order `Module.to_empty` allocates them (children before a module's own parameters, then
its buffers; a tied tensor once), since they were allocated before recording began and their blocks share the
allocator's segments.
  CPU: the profiler's memory events (profile_memory=True; experimental_event_tree gives each one's address, signed
       size and time) — the same aten ops as on CUDA for the same model code, up to each device's own scratch.
  CUDA: torch.cuda.memory._record_memory_history(); the snapshot's device trace has `alloc` (requested size) and
       `free_completed` (the block back in its pool) entries with addresses and time_us.
Events are given to the pass whose marked range started last before them (prefill = pass 0; decode step = pass − 1).
"""



def module_tensors(model) -> list[int]:
    """Bytes of each parameter and buffer in Module._apply's order (children first), distinct storages once."""
    out, seen = [], set()

    def visit(m):
        for child in m.children():
            visit(child)
        for t in list(m._parameters.values()) + list(m._buffers.values()):
            if t is not None and t.data_ptr() not in seen:
                seen.add(t.data_ptr())
                out.append(t.numel() * t.element_size())
    visit(model)
    return out


class TraceBuilder:
    """Turns (pass, signed bytes, address) events into rows, giving each live block an id."""

    def __init__(self, point_id: str):
        self.point_id, self.rows, self.live, self.next_id = point_id, [], {}, 0

    def add(self, pass_index: int, nbytes: int, addr: int | None = None) -> None:
        phase, step = ("weights", -1) if pass_index < 0 else ("prefill", 0) if pass_index == 0 else ("decode", pass_index - 1)
        if nbytes > 0:
            aid = self.next_id
            self.next_id += 1
            if addr is not None:
                self.live[addr] = aid
            action = "alloc"
        else:
            aid = self.live.pop(addr, None)
            if aid is None:              # a block allocated before recording began (weights are never freed)
                return
            action, nbytes = "free", -nbytes
        self.rows.append({"point_id": self.point_id, "phase": phase, "step": step, "event_index": len(self.rows),
                          "action": action, "size_bytes": int(nbytes), "addr_id": aid})

    def mark(self, pass_index: int, reserved_bytes: int) -> None:
        """The allocator's measured reserved bytes at the end of a pass (action `reserved`, not replayed)."""
        phase, step = ("prefill", 0) if pass_index == 0 else ("decode", pass_index - 1)
        self.rows.append({"point_id": self.point_id, "phase": phase, "step": step, "event_index": len(self.rows),
                          "action": "reserved", "size_bytes": int(reserved_bytes), "addr_id": -1})

    def add_weights(self, sizes: list[int]) -> None:
        for s in sizes:
            self.add(-1, s)


def pass_of(time, starts: list[tuple[int, int]]) -> int:
    """The pass whose start is the latest at or before `time` (0 before the first)."""
    best = starts[0][1] if starts else 0
    for t0, i in starts:
        if t0 <= time:
            best = i
        else:
            break
    return best


def cpu_profiler_events(prof, mark: str) -> tuple[list[tuple[int, int]], list[tuple[int, int, int]]]:
    """(start_ns, pass) of each marked pass and (time_ns, signed bytes, address) of each CPU allocation event."""
    import torch
    alloc_tag = torch._C._profiler._EventType.Allocation
    passes, mem, stack = [], [], list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        e = stack.pop()
        stack.extend(e.children)
        if e.tag == alloc_tag:
            f = e.extra_fields
            if f.device.type == "cpu":
                mem.append((e.start_time_ns, f.alloc_size, f.ptr))
        elif e.name.startswith(mark):
            passes.append((e.start_time_ns, int(e.name[len(mark):])))
    return sorted(passes), sorted(mem)


def trace_from_events(point_id: str, weights: list[int], passes, mem) -> list[dict]:
    b = TraceBuilder(point_id)
    b.add_weights(weights)
    for t, nbytes, addr in mem:
        b.add(pass_of(t, passes), nbytes, addr)
    return b.rows


def snapshot_events(snapshot: dict, device_index: int = 0) -> list[tuple[float, int, int]]:
    """(time_us, signed bytes, address) from a torch.cuda.memory._snapshot(): allocs and completed frees."""
    traces = snapshot.get("device_traces") or []
    entries = traces[device_index] if device_index < len(traces) else []
    sizes, out = {}, []
    for e in entries:
        if e["action"] == "alloc":
            sizes[e["addr"]] = e["size"]
            out.append((e["time_us"], e["size"], e["addr"]))
        elif e["action"] == "free_completed":
            out.append((e["time_us"], -sizes.pop(e["addr"], e["size"]), e["addr"]))
    return out


