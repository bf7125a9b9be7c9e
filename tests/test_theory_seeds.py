"""The seeds' worked numbers (../shared/seeds), reproduced by the theory. Where a seed's own arithmetic
slips, the test asserts what the formula gives and the comment records the quoted figure."""
import pytest

from theory import Workload, count_ops, load_hardware, load_model
from theory.memory import kv_bytes_per_token, max_batch_at_context, weight_bytes
from theory.hfconfig import gpt_style
from theory.ops import causal_pairs
from theory.parallel import article_latency, attention_bottleneck_cli
from theory.roofline import critical_batch

GB = 1e9


def ops_by_name(model, w):
    return {o.name: o for o in count_ops(model, w)}


# --- seed 000: the attention notebook (Llama-2-7B shapes as 12·d² per layer, A100 at 1560 GB/s) ---------
def test_notebook_decode_table():
    hw = load_hardware("a100-seed-notebook")
    bw, peak = hw.memory_bandwidth_bytes_per_s, hw.peak("bf16")
    model = gpt_style("notebook-llama", 4096, 32, vocab_size=32000, num_attention_heads=32, tie_word_embeddings=False)
    for kv_tokens, attn_mem_ms, attn_comp_ms, attn_share in ((1024, 0.344, 0.002, 0.038), (128_000, 43.019, 0.215, 0.829)):
        # The notebook's seq_len is the keys read; our decode step at context S reads S+1 keys.
        ops = ops_by_name(model, Workload(phase="decode", batch=1, context_len=kv_tokens - 1))
        attn = ops["attn_core"]
        assert attn.kv_read_bytes / bw * 1e3 == pytest.approx(attn_mem_ms, abs=5e-4)
        assert attn.flops == pytest.approx(2 * 32 * 2 * kv_tokens * 4096 + 3 * 32 * 32 * kv_tokens, rel=1e-12)
        assert 4 * 32 * kv_tokens * 4096 / peak * 1e3 == pytest.approx(attn_comp_ms, abs=5e-4)
        # "Model" memory: every weight including the full embedding table and the lm_head (norms ignored).
        counts = model.param_counts()
        model_bytes = 2 * (counts["attention"] + counts["mlp"] + counts["embedding"] + counts["lm_head"])
        assert model_bytes / bw * 1e3 == pytest.approx(8.596, abs=5e-4)
        model_flops = 2 * (counts["attention"] + counts["mlp"] + counts["embedding"])
        assert model_flops / peak * 1e3 == pytest.approx(0.042, abs=1e-3)
        total = (attn.kv_read_bytes / bw + 4 * 32 * kv_tokens * 4096 / peak + model_bytes / bw + model_flops / peak)
        assert attn.kv_read_bytes / bw / total == pytest.approx(attn_share, abs=5e-4)


# --- seed 001: decoder FLOPs and KV bytes, and the profiled KV staircase ------------------------------------
def test_article_24_d_squared_split():
    d = 4096
    ops = ops_by_name(gpt_style("g", d, 1), Workload(phase="decode", context_len=0))
    qkv = ops["q_proj"].flops + ops["k_proj"].flops + ops["v_proj"].flops
    assert qkv == 6 * d * d and ops["o_proj"].flops == 2 * d * d
    assert ops["fc_in"].flops + ops["fc_out"].flops == 16 * d * d
    total = qkv + ops["o_proj"].flops + 16 * d * d
    assert total == 24 * d * d
    assert (qkv / total, ops["o_proj"].flops / total, 16 / 24) == pytest.approx((0.25, 0.0833, 0.6667), abs=1e-3)


def test_kv_bytes_per_token_4Ld():
    gpt3 = load_model("gpt-3-175b")
    assert kv_bytes_per_token(gpt3, "bf16") == 4 * 96 * 12288 == 4_718_592        # "4.72 MB per token"
    # The article says 2048 tokens need 5.6 GB; 4.72 MB × 2048 is 9.66 GB (a slip in the article).
    assert kv_bytes_per_token(gpt3, "bf16") * 2048 == pytest.approx(9.66 * GB, rel=1e-3)
    small = gpt_style("d1024-L8", 1024, 8)
    assert kv_bytes_per_token(small, "bf16") == 32 * 1024                          # 32 KB per token
    assert 20 * kv_bytes_per_token(small, "bf16") == 655_360                       # "640 KB" per 20 tokens
    assert 2.1e6 / 655_360 == pytest.approx(3.2, abs=0.05)                          # the ~3x staircase


# --- seed 002: inference arithmetic ------------------------------------------------------------------------
def test_52b_parameters_and_kv():
    m = load_model("anthropic-52b")
    c = m.param_counts()
    assert c["attention"] + c["mlp"] == 12 * 64 * 8192**2 == 51_539_607_552
    assert c["embedding"] == 536_870_912
    assert c["attention"] + c["mlp"] + c["embedding"] == 52_076_478_464
    assert kv_bytes_per_token(m, "bf16") == 2_097_152
    assert 2 * 52_076_478_464 == 104_152_956_928                                    # "≈104GB" of weights
    # 16 GB spare / 2 MB per token ≈ 8000 tokens (the article rounds 2,097,152 B to 0.002 GB).
    assert 16 * GB / kv_bytes_per_token(m, "bf16") == pytest.approx(7629, abs=1)


def test_flops_bytes_ratio_208_and_kv_compute():
    hw = load_hardware("a100-seed-article")
    assert hw.peak("bf16") / hw.memory_bandwidth_bytes_per_s == 208
    assert critical_batch(hw, "bf16") == 208                                        # bf16: 2 bytes, 2 FLOPs per weight
    m = load_model("anthropic-52b")
    ops = ops_by_name(m, Workload(phase="prefill", prompt_len=1))
    assert ops["k_proj"].flops + ops["v_proj"].flops == 64 * 2 * 8192**2 * 2 == 17_179_869_184
    kv_weight_bytes = ops["k_proj"].weight_bytes + ops["v_proj"].weight_bytes
    assert kv_weight_bytes / hw.memory_bandwidth_bytes_per_s * 1e3 == pytest.approx(11.45, abs=0.01)  # "11.4 ms"


def test_flops_count_2P():
    # The article writes F = 64·(24·8192² + 23·8192) = 103,079,215,104, but that total is 64·24·8192² alone:
    # the 23·d term (64·23·8192 = 12,058,624 FLOPs) is dropped in its arithmetic. Theory's weight matmuls
    # give the 24·L·d² figure exactly.
    assert 64 * 24 * 8192**2 == 103_079_215_104
    ops = count_ops(load_model("anthropic-52b"), Workload(phase="prefill", prompt_len=1))
    weight_matmuls = sum(o.flops for o in ops if o.is_matmul and o.name not in ("attn_core", "lm_head"))
    assert weight_matmuls == 103_079_215_104


def test_gopher_latencies():
    hw = load_hardware("a100-seed-article")
    r = article_latency(260e9, 80, 16384, 16, 512, hw.peak("bf16"), hw.memory_bandwidth_bytes_per_s,
                        hw.interconnect_bandwidth_bytes_per_s, bytes_per_value=1)
    assert r["small_batch_compute_s"] * 1e3 == pytest.approx(21.67, abs=0.01)      # "≈22 ms"
    # The article multiplies 128 layers (not Gopher's 80) for 5.12 ms; the formula gives 80·4·10 µs = 3.2 ms,
    # so small batch totals 24.9 ms, not the quoted 27 ms.
    assert r["small_batch_comms_s"] * 1e3 == pytest.approx(3.2)
    assert r["large_batch_compute_s"] * 1e3 == pytest.approx(53.3, abs=0.05)       # "≈53 ms"
    assert r["large_batch_comms_s"] * 1e3 == pytest.approx(8.95, abs=0.01)         # "≈9 ms", bytes factor left out
    with_bytes = article_latency(260e9, 80, 16384, 16, 512, hw.peak("bf16"), hw.memory_bandwidth_bytes_per_s,
                                 hw.interconnect_bandwidth_bytes_per_s)
    assert with_bytes["large_batch_comms_s"] * 1e3 == pytest.approx(17.9, abs=0.01)  # bf16 activations: 2 bytes
    # Exercise: 52B on 4 GPUs at batch 256: "about 21 ms" compute and "about 2 ms" comms.
    r52 = article_latency(52e9, 64, 8192, 4, 256, hw.peak("bf16"), hw.memory_bandwidth_bytes_per_s,
                          hw.interconnect_bandwidth_bytes_per_s, bytes_per_value=1)
    assert r52["large_batch_compute_s"] * 1e3 == pytest.approx(21.3, abs=0.05)
    assert r52["large_batch_comms_s"] * 1e3 == pytest.approx(1.79, abs=0.01)


# --- seed 003: lecture slides ------------------------------------------------------------------------------
def test_slides_ratios():
    a10 = load_hardware("a10-seed-notebook")
    assert a10.peak("fp16") / a10.memory_bandwidth_bytes_per_s == pytest.approx(208.3, abs=0.05)
    # Standard attention for one head, N=4096, d=128, fp16, no causal skip: (4d+3)N² FLOPs, 8N²+8Nd bytes.
    one_head = gpt_style("one-head", 128, 1, num_attention_heads=1)
    ops = ops_by_name(one_head, Workload(phase="prefill", prompt_len=4096, dtype="fp16", attention="materialized"))
    flops = ops["attn_scores"].flops + ops["attn_softmax"].flops + ops["attn_values"].flops
    moved = ops["attn_scores"].bytes + ops["attn_softmax"].bytes + ops["attn_values"].bytes
    N, d = 4096, 128
    assert flops == (4 * d + 3) * N * N
    assert moved == 8 * N * N + 8 * N * d
    assert flops / moved == pytest.approx(62.4, abs=0.05)                           # "≈62 ops/byte"
    # A 4096³ GEMM in fp16: 2N³ / (3·2N²) = N/3.
    assert 2 * N**3 / (3 * 2 * N * N) == pytest.approx(1365.3, abs=0.05)
    lin = ops_by_name(gpt_style("sq", N, 1, num_attention_heads=32), Workload(phase="prefill", prompt_len=N, dtype="fp16"))["q_proj"]
    assert lin.flops / lin.bytes == pytest.approx(1365.3, abs=0.05)


def test_slides_resident_queries_a10():
    m, a10 = load_model("llama-2-7b"), load_hardware("a10")
    kv = kv_bytes_per_token(m, "bf16") * 4096
    assert kv == 2 * 2**30                                                          # "≈2 GB": exactly 2 GiB
    assert weight_bytes(m, "bf16") == 13_476_831_232                                # "≈14 GB"
    # Usable 23,028 MiB (the driver total), no reserve: (24.15e9 − 13.48e9) / 2.147e9 = 4.97 → 4 resident queries.
    assert max_batch_at_context(m, a10, 4096, "bf16") == 4
    # The slides' ~5 comes from reading 24 GB as 24 GiB (or rounding weights to 14 GB and KV to 2 GB).
    gib_a10 = type(a10)(**{**a10.to_json(), "memory_capacity_bytes": 24 * 2**30,
                                        "usable_memory_bytes": None})
    assert max_batch_at_context(m, gib_a10, 4096, "bf16") == 5
    assert max_batch_at_context(m, a10, 4096, "bf16", reserve_fraction=0.1) == 3


# --- seed 004: the attention-bottleneck CLI, 10 A100s, seq 1024, fp32 ----------------------------------------
def test_attention_bottleneck_cli_sample():
    hw = load_hardware("a100-seed-cli")
    r = attention_bottleneck_cli(96, 96, 128, 1024, 10, hw.peak("fp32"), hw.memory_bandwidth_bytes_per_s,
                                 hw.interconnect_bandwidth_bytes_per_s)
    assert r["kv_cache_bytes"] // 2**30 == 9                                        # "9 GB" (it prints GiB)
    s, v = r["scores"], r["values"]
    assert s["flops"] == 25_067_520 and v["flops"] == 25_153_536
    assert s["read_bytes"] == v["read_bytes"] == 50_282_496
    assert s["sync_bytes"] == 393_216 and v["sync_bytes"] == 49_152
    assert f"{s['compute_s']:.3e}" == "1.286e-07" and f"{v['compute_s']:.3e}" == "1.290e-07"
    assert f"{s['memory_s']:.3e}" == "2.599e-06" and f"{v['memory_s']:.3e}" == "2.599e-06"
    assert f"{s['sync_s']:.3e}" == "6.144e-06" and f"{v['sync_s']:.3e}" == "7.680e-07"
    assert round(s["bandwidth_with_sync_bytes_per_s"] / 1e12, 3) == 6.768
    assert round(s["bandwidth_without_sync_bytes_per_s"] / 1e12, 3) == 39.115
    assert round(v["bandwidth_with_sync_bytes_per_s"] / 1e12, 3) == 24.434
    assert round(v["bandwidth_without_sync_bytes_per_s"] / 1e12, 3) == 38.981


def test_llama_2_7b_exact_params():
    assert load_model("llama-2-7b").num_params == 6_738_415_616


def test_causal_pairs():
    assert causal_pairs(4, None) == 10 and causal_pairs(6, 3) == 6 + 3 * 3
