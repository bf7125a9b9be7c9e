"""Harness speed (pytest-benchmark records; goals are reported, never asserted):
- the harness-timed decode step against a bare loop on the same model, interleaved A/B blocks of ≥10 ms,
  ratio of medians with a bootstrap interval (goal ≤ 1.02);
- model build time against allocating and filling the same bytes with uniform_ (goal ≤ 1.5x)."""
import time

import numpy as np
import torch

from bench.model import build_model, weight_bytes
from bench.devices.cpu import CpuDevice
from bench.timing.trajectory import run_trajectory
from theory.hfconfig import from_hf_config

SPEC = from_hf_config({"hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2,
                       "intermediate_size": 688, "vocab_size": 4096}, "bench-speed")


def bare_loop(model, ids, generated):
    from transformers import DynamicCache
    from bench.model import Passes
    run = Passes(model, DynamicCache(config=model.config))
    tokens = ids
    with torch.inference_mode():
        for _ in range(generated):
            out = run(tokens)
            tokens = out.logits[:, -1].argmax(-1, keepdim=True)


def harness_vs_bare(blocks: int = 10, generated: int = 24):
    device = CpuDevice(threads=1)
    model = build_model(SPEC, "cpu", "fp32")
    ids = torch.randint(0, 4096, (1, 16))
    bare_loop(model, ids, generated)
    a, b = [], []
    for _ in range(blocks):                       # interleaved: A then B, so drifts hit both
        t0 = time.perf_counter()
        run_trajectory(model, device, ids, generated, "dynamic", None)
        a.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        bare_loop(model, ids, generated)
        b.append(time.perf_counter() - t0)
    a, b = np.array(a), np.array(b)
    rng = np.random.default_rng(0)
    boots = [np.median(rng.choice(a, a.size)) / np.median(rng.choice(b, b.size)) for _ in range(2000)]
    return float(np.median(a) / np.median(b)), float(np.quantile(boots, 0.025)), float(np.quantile(boots, 0.975)), float(np.median(b))


def test_harness_overhead(benchmark):
    ratio, lo, hi, block_s = benchmark.pedantic(harness_vs_bare, rounds=1, iterations=1)
    benchmark.extra_info.update({"ratio": ratio, "ci_low": lo, "ci_high": hi, "block_s": block_s, "goal": 1.02})
    print(f"\nharness/bare decode ratio {ratio:.3f} (95% CI {lo:.3f}-{hi:.3f}), blocks of {block_s * 1e3:.1f} ms")
    assert block_s >= 0.01                        # the blocks are long enough to time


def build_vs_fill():
    t0 = time.perf_counter()
    model = build_model(SPEC, "cpu", "fp32")
    build_s = time.perf_counter() - t0
    nbytes = weight_bytes(model)
    t0 = time.perf_counter()
    x = torch.empty(nbytes // 4)
    x.uniform_(-0.1, 0.1)
    fill_s = time.perf_counter() - t0
    return build_s, fill_s


def test_build_time(benchmark):
    build_model(SPEC, "cpu", "fp32")              # first call imports transformers' model code
    build_s, fill_s = benchmark.pedantic(build_vs_fill, rounds=3, iterations=1)
    benchmark.extra_info.update({"build_s": build_s, "fill_s": fill_s, "ratio": build_s / fill_s, "goal": 1.5})
    print(f"\nbuild {build_s * 1e3:.1f} ms vs allocate+uniform_ {fill_s * 1e3:.1f} ms: {build_s / fill_s:.2f}x")
    assert build_s > 0 and fill_s > 0
