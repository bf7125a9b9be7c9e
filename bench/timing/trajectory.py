"""One trajectory, timed directly on the model's own KV cache: the prefill, then every decode step, each pass
on the device's timer. Read this first: everything bench measures is repeats of it (bench/timing/repeats.py).
The next token stays on the device (no .item())."""
from dataclasses import dataclass, field

import torch

from bench.devices.base import MemorySample
from bench.model import Passes, cache_tensor_bytes, new_cache


@dataclass
class Trajectory:
    times_s: list[float]                          # index 0: prefill; 1..: decode steps 0..
    kv_bytes: list[int]                           # cache tensor bytes after each pass
    memory: list[MemorySample] = field(default_factory=list)


def run_trajectory(model, device, input_ids, generated: int, cache: str, max_cache_len: int | None,
                   probe_memory: bool = False) -> Trajectory:
    """Prefill input_ids, then generated−1 decode steps; time each pass with the device timer."""
    past = new_cache(model, cache, max_cache_len)
    run = Passes(model, past)
    times, kv, mem = [], [], []
    tokens = input_ids
    with torch.inference_mode():
        for _ in range(generated):
            if probe_memory:
                device.reset_peak()
            device.sync()
            t = device.start()
            out = run(tokens)
            times.append(device.stop(t))
            if probe_memory:
                mem.append(device.read_peak())
            kv.append(cache_tensor_bytes(past))
            tokens = out.logits[:, -1].argmax(-1, keepdim=True)   # stays on the device
    run.check()                                   # after the timed passes: one synchronisation
    return Trajectory(times, kv, mem)
