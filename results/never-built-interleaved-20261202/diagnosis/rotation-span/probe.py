"""Does a kernel timed with rotated copies spanning ROTATE_SPAN x the LLC read DRAM's time, or does part of the
rotation stay in the cache? Times d=1280's decode linears (m = 1, fp32, one thread) with copies spanning 1, 2, 4, 8
and 16 LLCs, in shuffled rounds, beside a model-like pass: every linear of the 12 layers, each its own weight
(the model's 0.6 GB, nothing reused within a pass). Prints each span's median µs per call and its ratio to the
model-like pass's per-linear time. Usage: probe.py [ROUNDS]"""
import random
import statistics
import sys
import time

import torch
import torch.nn.functional as F

from bench.devices.select import get_device

torch.set_num_threads(1)
dev = get_device("cpu", threads=1)
llc = dev.info()["llc_bytes"]
print(f"llc_bytes {llc} ({llc / 2**20:.0f} MiB); threads {torch.get_num_threads()}")
D, I, KV, L = 1280, 3456, 256, 12
SHAPES = {"q_proj": (D, D), "k_proj": (KV, D), "o_proj": (D, D), "up_proj": (I, D), "down_proj": (D, I)}
SPANS = [1, 2, 4, 8, 16]
g = torch.Generator().manual_seed(0)


def weights(n_out, k_in, copies):
    return [torch.rand(n_out, k_in, generator=g) - 0.5 for _ in range(copies)]


sets = {}
for name, (n, k) in SHAPES.items():
    b = n * k * 4
    for s in SPANS:
        sets[(name, s)] = weights(n, k, max(1, -(-s * llc // b)))
# the model-like pass: each layer its own q, k, v, o, gate, up, down
layer = [("q_proj", (D, D)), ("k_proj", (KV, D)), ("v_proj", (KV, D)), ("o_proj", (D, D)),
         ("gate_proj", (I, D)), ("up_proj", (I, D)), ("down_proj", (D, I))]
model = [(name, torch.rand(n, k, generator=g) - 0.5) for _ in range(L) for name, (n, k) in layer]
print(f"model-like weights {sum(w.numel() * 4 for _, w in model) / 2**20:.0f} MiB")
xs = {k: torch.rand(1, 1, k, generator=g) for k in (D, I)}


def time_set(ws, calls=40):
    x = xs[ws[0].shape[1]]
    i = 0
    t0 = time.perf_counter()
    for _ in range(calls):
        F.linear(x, ws[i % len(ws)])
        i += 1
    return (time.perf_counter() - t0) / calls


def model_pass():
    per = {}
    for name, w in model:
        x = xs[w.shape[1]]
        t0 = time.perf_counter()
        F.linear(x, w)
        per.setdefault(name, []).append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in per.items()}


rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 15
rng = random.Random(1)
samples = {k: [] for k in sets}
msamples = {k: [] for k in SHAPES}
for r in range(rounds):
    keys = list(sets) + ["model"] * 3
    rng.shuffle(keys)
    for key in keys:
        if key == "model":
            for k, v in model_pass().items():
                if k in msamples:
                    msamples[k].append(v)
        else:
            time_set(sets[key], calls=5)          # settle
            samples[key].append(time_set(sets[key]))
print(f"{'op':10s} {'model-like':>10s} " + " ".join(f"{'x' + str(s):>12s}" for s in SPANS))
for name in SHAPES:
    m = statistics.median(msamples[name]) * 1e6
    cells = []
    for s in SPANS:
        v = statistics.median(samples[(name, s)]) * 1e6
        cells.append(f"{v:7.1f} {v / m:4.2f}")
    print(f"{name:10s} {m:10.1f} " + " ".join(f"{c:>12s}" for c in cells))
