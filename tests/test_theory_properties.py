"""Properties the arithmetic must keep, checked over many shapes with hypothesis."""
import pytest
from hypothesis import given, settings, strategies as st

from theory import Workload, count_ops, hardware_presets, load_hardware, load_model, predict
from theory.memory import kv_bytes_per_token, kv_cache_bytes
from theory.model import ModelSpec
from theory.hfconfig import from_hf_config

WEIGHT_MATMULS = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "fc_in", "fc_out", "lm_head"}


@st.composite
def models(draw):
    head_dim = draw(st.sampled_from([16, 32, 64, 128]))
    kv = draw(st.sampled_from([1, 2, 4, 8]))
    heads = kv * draw(st.sampled_from([1, 2, 4]))
    return from_hf_config({
        "hidden_size": heads * head_dim, "num_hidden_layers": draw(st.integers(1, 48)),
        "num_attention_heads": heads, "num_key_value_heads": kv,
        "intermediate_size": draw(st.integers(1, 64)) * 64, "vocab_size": draw(st.integers(1, 50000)),        # 0 is refused for gated models (issue 14)
        "tie_word_embeddings": draw(st.booleans()),
    }, "prop")


@settings(max_examples=60, deadline=None)
@given(models(), st.integers(1, 16), st.integers(1, 512))
def test_weight_matmul_flops_are_2_params_tokens(model: ModelSpec, batch, tokens):
    w = Workload(phase="prefill", batch=batch, prompt_len=tokens, logits="all")
    ops = count_ops(model, w)
    c = model.param_counts()
    matmul_params = c["attention"] + c["mlp"] + (c["embedding"] if model.vocab_size else 0)
    assert sum(o.flops for o in ops if o.name in WEIGHT_MATMULS) == 2 * matmul_params * batch * tokens


@settings(max_examples=60, deadline=None)
@given(models(), st.integers(1, 4096))
def test_gqa_scales_kv_by_kv_heads_over_heads(model: ModelSpec, tokens):
    mha = ModelSpec(**{**model.__dict__, "num_key_value_heads": model.num_attention_heads})
    assert kv_bytes_per_token(model, "bf16") * model.num_attention_heads == \
        kv_bytes_per_token(mha, "bf16") * model.num_key_value_heads
    w = Workload(phase="decode", context_len=tokens)
    read = {m.num_key_value_heads: sum(o.kv_read_bytes for o in count_ops(m, w)) for m in (model, mha)}
    assert read[model.num_key_value_heads] * model.num_attention_heads == read[mha.num_key_value_heads] * model.num_key_value_heads


@settings(max_examples=40, deadline=None)
@given(models(), st.integers(2, 2048))
def test_fused_causal_prefill_halves_attention(model: ModelSpec, tokens):
    fused = {o.name: o for o in count_ops(model, Workload(phase="prefill", prompt_len=tokens))}
    full = {o.name: o for o in count_ops(model, Workload(phase="prefill", prompt_len=tokens, attention="materialized"))}
    full_matmul = full["attn_scores"].flops + full["attn_values"].flops
    fused_matmul = fused["attn_core"].flops - 3 * model.num_attention_heads * model.num_hidden_layers * tokens * (tokens + 1) // 2
    assert fused_matmul * 2 * tokens == full_matmul * (tokens + 1)                 # T(T+1)/2 of T² pairs


@settings(max_examples=30, deadline=None)
@given(models(), st.integers(0, 4096), st.integers(1, 8))
def test_decode_time_linear_in_depth(model: ModelSpec, context, batch):
    hw = load_hardware("a100-sxm-80gb")
    w = Workload(phase="decode", batch=batch, context_len=context)
    t = [predict(ModelSpec(**{**model.__dict__, "num_hidden_layers": L}), hw, w).time_s for L in (4, 8, 12)]
    assert t[2] - t[1] == pytest.approx(t[1] - t[0], rel=1e-9)
    assert t[1] > t[0]


@pytest.mark.parametrize("hw_id", [h for h, s in hardware_presets().items() if s.kind == "gpu"])
@pytest.mark.parametrize("model_name", ["llama-2-7b", "llama-3-8b", "tinyllama-1.1b"])
def test_decode_batch_1_is_memory_bound_on_every_gpu(hw_id, model_name):
    p = predict(load_model(model_name), hardware_presets()[hw_id], Workload(phase="decode", context_len=1024, dtype="fp16"))
    assert sum(o.memory_s for o in p.ops) > 10 * sum(o.compute_s for o in p.ops)
    assert all(o.bound == "memory" for o in p.ops if o.op.is_matmul)


@pytest.mark.parametrize("hw_id", ["a100-sxm-40gb", "a100-sxm-80gb", "a100-pcie-80gb"])
def test_prefill_1k_is_compute_bound_on_a100(hw_id):
    p = predict(load_model("llama-2-7b"), load_hardware(hw_id), Workload(phase="prefill", prompt_len=1024))
    assert sum(o.compute_s for o in p.ops) > sum(o.memory_s for o in p.ops)
    # lm_head runs on the last token only (one row per sequence), so it stays memory-bound.
    assert all(p_.bound == "compute" for p_ in p.ops if p_.op.name in WEIGHT_MATMULS - {"lm_head"})


def test_sliding_window_caps_cache_and_reads():
    m = load_model("mistral-7b")
    assert kv_cache_bytes(m, 1, 10_000, "bf16") == kv_cache_bytes(m, 1, 4096, "bf16")
    near = sum(o.kv_read_bytes for o in count_ops(m, Workload(context_len=5000)))
    far = sum(o.kv_read_bytes for o in count_ops(m, Workload(context_len=50_000)))
    assert near == far


def test_as_run_terms_add_traffic():
    m = load_model("tinyllama-1.1b")
    base = dict(phase="decode", context_len=100)
    ideal = {o.name: o for o in count_ops(m, Workload(**base))}
    copy = {o.name: o for o in count_ops(m, Workload(**base, kv_update="copy"))}
    static = {o.name: o for o in count_ops(m, Workload(**base, kv_update="static", max_cache_len=256))}
    per_token_layer = 2 * m.kv_dim * 2
    L = m.num_hidden_layers
    assert ideal["kv_update"].kv_write_bytes == L * per_token_layer
    assert copy["kv_update"].kv_read_bytes == L * 100 * per_token_layer
    assert copy["kv_update"].kv_write_bytes == L * 101 * per_token_layer
    assert static["attn_core"].kv_read_bytes == L * 256 * per_token_layer
    assert ideal["attn_core"].kv_read_bytes == L * 101 * per_token_layer
    rep = {o.name: o for o in count_ops(m, Workload(**base, repeat_kv=True))}
    assert rep["repeat_kv"].act_bytes == ideal["attn_core"].kv_read_bytes * m.gqa_group


def test_tensor_parallel_splits_and_adds_comms():
    m, hw = load_model("llama-2-70b"), load_hardware("h100-sxm-80gb")
    w = Workload(phase="decode", batch=1, context_len=1024)
    one, four = predict(m, hw, w), predict(m, hw, w, tp=4)
    comm = [o for o in four.ops if o.op.name == "allreduce"][0]
    assert comm.op.count == 2 * 80
    msg = 8192 * 2
    assert comm.time_s == pytest.approx(160 * (10e-6 + 1.5 * msg / 450e9))
    assert four.time_s < one.time_s
    assert "comms" in four.group_time_s() and "comms" not in one.group_time_s()


def test_additive_mode_is_never_faster():
    m, hw = load_model("llama-2-7b"), load_hardware("l4")
    w = Workload(phase="prefill", prompt_len=256)
    assert predict(m, hw, w, mode="additive").time_s > predict(m, hw, w).time_s


def test_launch_overhead_adds_per_op_instance():
    m = load_model("tinyllama-1.1b")
    hw = load_hardware("a10")
    slow = type(hw)(**{**hw.to_json(), "launch_overhead_s": 5e-6})
    w = Workload(context_len=10)
    base, over = predict(m, hw, w), predict(m, slow, w)
    instances = sum(o.op.count for o in base.ops)
    assert over.time_s == pytest.approx(base.time_s + instances * 5e-6, rel=1e-9)
