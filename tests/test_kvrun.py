"""theory/kvrun.py: KV memory and capacity as CUDA's caching allocator reserves them, and theory's JSON keys."""
import json
import subprocess
import sys

from theory.hardware import load_hardware
from theory.kvrun import capacity_as_run, kv_as_run, live_sizes, packed, staircase, step_states
from theory.hfconfig import from_hf_config, load_model

MiB = 1 << 20


def seed_model():
    return from_hf_config({"hidden_size": 1024, "num_hidden_layers": 8, "num_attention_heads": 8,
                           "num_key_value_heads": 8, "head_dim": 128, "intermediate_size": 2752,
                           "vocab_size": 32000}, "seed-001")


def test_static_cache_of_3_mib_tensors_packs_into_one_20_mib_segment():
    m = from_hf_config({"hidden_size": 1536, "num_hidden_layers": 2, "num_attention_heads": 12,
                        "num_key_value_heads": 12, "head_dim": 128, "intermediate_size": 4096, "vocab_size": 1000})
    # 12 heads × 128 × 2 B × 1024 slots = 3 MiB per tensor; four fit a 20 MiB segment (remainders > 1 MiB split)
    out = kv_as_run(m, 1, 1024, "bf16", "static", 1024)
    assert out["ideal_bytes"] == 4 * 3 * MiB and out["reserved_bytes"] == 20 * MiB


def test_dynamic_cache_counts_the_concatenation_copy():
    sizes = live_sizes(seed_model(), 1, 200, "bf16")
    assert len(sizes) == 17 and sizes[-1] == 200 * 2048          # 16 tensors + the one torch.cat makes
    assert packed(sizes).reserved_bytes == 4 * 2 * MiB           # 17 × 400 KiB, 5 to a 2 MiB small segment: 4


def test_capacity_as_run_never_exceeds_ideal_and_says_which():
    m, hw = load_model("llama-2-7b"), load_hardware("a100-sxm-80gb")
    for cache in ("dynamic", "static"):
        c = capacity_as_run(m, hw, 1, 1024, "bf16", cache=cache)
        b, t = c["max_batch_at_context"], c["max_context_at_batch"]
        assert 0 < b["as_run_cuda"] <= b["ideal"] and 0 < t["as_run_cuda"] <= t["ideal"]
        assert "ideal" in c["basis"] and "as_run_cuda" in c["basis"]


def test_step_states_keep_measured_reserved_rows_out_of_the_replay():
    rows = [{"phase": "prefill", "step": 0, "action": "alloc", "size_bytes": 100, "addr_id": 0},
            {"phase": "prefill", "step": 0, "action": "reserved", "size_bytes": 123, "addr_id": -1},
            {"phase": "decode", "step": 0, "action": "free", "size_bytes": 100, "addr_id": 0}]
    a, b = step_states(rows)
    assert (a["allocated_bytes"], a["reserved_bytes"], a["measured_reserved_bytes"]) == (512, 2 * MiB, 123)
    assert b["allocated_bytes"] == 0 and "measured_reserved_bytes" not in b


def test_staircase_counts_jumps_and_their_period():
    sc = staircase([1, 2, 3, 4, 5, 6, 7], [0, 0, 2, 2, 2, 4, 4])
    assert (sc["jumps"], sc["median_jump_bytes"], sc["median_period_tokens"]) == (2, 2, 3)
    assert sc["growth_bytes_per_token"] == 4 / 6


def test_theory_json_adds_the_as_run_keys_and_keeps_the_old_ones():
    args = ["--model", "llama-2-7b", "--hardware", "a100-sxm-80gb", "--context-len", "1024", "--format", "json"]
    out = json.loads(subprocess.run([sys.executable, "-m", "theory", *args], capture_output=True, text=True,
                                    check=True).stdout)
    assert out["max_batch_at_context"] == 134                      # unchanged
    kv = out["kv_as_run_cuda"]
    assert kv["dynamic"]["reserved_bytes"] >= kv["dynamic"]["ideal_bytes"] and set(kv) == {"dynamic", "static"}
    assert out["capacity_as_run_cuda"]["dynamic"]["max_batch_at_context"]["as_run_cuda"] <= 134
