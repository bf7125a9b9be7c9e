"""A decode linear's time per weight element against its row length k, at a fixed weight size (the size of
tinyllama-1.1b's gate_proj, 11,534,336 elements, n = size // k rows), one torch thread, fp32, a 64 MiB buffer
written before each call so the weights come from DRAM. 25 rounds, the row lengths shuffled in each; prints the
median and quartiles per k. Run from the repository root: `.venv/bin/python <this file> > probe-N.txt`.
Asked after the interleaved sets found tinyllama's linears (k = 2048) 3-9% faster than interpolated from
calibration models with k = 1536 and 2560; not used by any prediction."""
import random
import statistics
import sys
import time

import torch

torch.set_num_threads(1)
SIZE = int(sys.argv[1]) if len(sys.argv) > 1 else 11534336
KS = [1024, 1280, 1536, 1792, 2048, 2304, 2560, 2816, 3072, 3584, 4096, 4608, 5120, 5632, 6144, 6912, 8192]
weights = {k: (torch.randn(SIZE // k, k), torch.randn(1, k)) for k in KS}
flush = torch.empty(64 * 2**20 // 4)
per_element_ns = {k: [] for k in KS}
random.seed(0)
for _ in range(25):
    order = KS[:]
    random.shuffle(order)
    for k in order:
        w, x = weights[k]
        flush.add_(1.0)
        t0 = time.perf_counter()
        torch.nn.functional.linear(x, w)
        per_element_ns[k].append((time.perf_counter() - t0) / w.numel() * 1e9)
print("k rows median_ns_per_element q25 q75")
for k in KS:
    v = sorted(per_element_ns[k])
    print(k, SIZE // k, f"{statistics.median(v):.4f} {v[6]:.4f} {v[18]:.4f}")
