"""How much does one trajectory's TPOT move between trajectories, and does it move with the kernels timed in the
seconds around it? Builds d=1280 L=12 (fp32, one thread, random weights), then N times: one trajectory (prefill
128 + 7 decode steps, as versus runs it) and one burst of its decode linears alone (q, k, v, o, gate, up, down and
lm_head at m = 1, rotated copies spanning 2 LLCs as bench/kernels/microbench.py times them), summed as a step
would (x12 layers). Prints each pair and the correlation of the two. Usage: probe.py [N]"""
import math
import statistics
import sys
import time

import torch

from bench.devices.cpu import llc_bytes
from bench.devices.select import get_device
from bench.kernels.microbench import KernelSampler
from bench.kernels.plan import needed, passes
from bench.model import build_model
from bench.timing.trajectory import run_trajectory
from theory.hfconfig import load_model

N = int(sys.argv[1]) if len(sys.argv) > 1 else 20
dev = get_device("cpu", threads=1)
spec = load_model("results/never-built-interleaved-20261202/unseen-d1280-L12.json")
model = build_model(spec, dev.torch_device, "fp32", "sdpa")
ids = torch.randint(0, spec.vocab_size, (1, 128), generator=torch.Generator().manual_seed(0))
shapes = passes(spec, 1, 128, 8, "fp32", "sdpa", "dynamic", None)
llc = llc_bytes()
samplers, seen = [], set()
for k, st in needed(shapes, "dram"):          # one per kernel (probe-1.txt counted each of them two or three times)
    if k.impl == "linear" and k.dims["tokens"] == 1 and k.op not in seen:
        seen.add(k.op)
        count = 1 if k.op == "lm_head" else spec.num_hidden_layers
        samplers.append((k.op, count, KernelSampler(k, dev, "dram", llc)))
print("kernels:", ", ".join(f"{op} x{c}" for op, c, _ in samplers))
run_trajectory(model, dev, ids, 8, "dynamic", None)                  # warm-up
tp, ks = [], []
for i in range(N):
    t = run_trajectory(model, dev, ids, 8, "dynamic", None).times_s
    tpot = statistics.mean(t[1:])
    burst = sum(c * statistics.median([s.sample() for _ in range(3)]) for _, c, s in samplers)
    tp.append(tpot)
    ks.append(burst)
    print(f"{time.strftime('%H:%M:%S')} trajectory {i + 1:2d}: TPOT {tpot * 1e3:6.1f} ms (steps "
          f"{min(t[1:]) * 1e3:.1f}-{max(t[1:]) * 1e3:.1f}); linears alone {burst * 1e3:6.1f} ms; "
          f"ratio {tpot / burst:.3f}", flush=True)
mt, mk = statistics.mean(tp), statistics.mean(ks)
cov = sum((a - mt) * (b - mk) for a, b in zip(tp, ks))
r = cov / math.sqrt(sum((a - mt) ** 2 for a in tp) * sum((b - mk) ** 2 for b in ks))
rat = [a / b for a, b in zip(tp, ks)]
print(f"TPOT median {statistics.median(tp) * 1e3:.1f} ms, range {min(tp) * 1e3:.1f}-{max(tp) * 1e3:.1f}; "
      f"linears median {statistics.median(ks) * 1e3:.1f} ms, range {min(ks) * 1e3:.1f}-{max(ks) * 1e3:.1f}; "
      f"correlation {r:.2f}; ratio median {statistics.median(rat):.3f}, range {min(rat):.3f}-{max(rat):.3f}")
