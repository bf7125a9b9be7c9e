"""Compiled steps in the profiler: Inductor kernel names → theory ops, extern matmuls by shape, shares."""
from types import SimpleNamespace

import pytest

from bench.profiling.compiled_attribute import FRAMEWORK, attribute_compiled, row_group
from bench.profiling.compiled_names import aten_names, group_name, kernel_members, members_of
from theory.hfconfig import from_hf_config
from theory.ops import OPS

# Kernel names as torch 2.13's Inductor printed them for a tiny Llama (static cache, CPU, kernel profiling on).
NAMES = {
    "graph_0_cpp_fused_add_embedding_mean_mul_pow_rsqrt_0": ["embedding", "norm"],
    "graph_0_cpp_fused__unsafe_view_cat_neg_slice_transpose_view_1": ["rotary"],
    "graph_0_cpp_fused__to_copy__unsafe_view_add_arange_cat_cos_index_copy_mul_neg_sin_slice_transpose_unsqueeze_view_2":
        ["rotary", "kv_update"],
    "graph_0_cpp_fused__unsafe_view_mul_silu_5": ["act_mul"],
    "graph_0_cpp_fused__unsafe_view_add_mean_mul_pow_rsqrt_10": ["norm"],
    "triton_red_fused_add_mean_mul_pow_rsqrt_0": ["norm"],
    "triton_poi_fused_add_7": ["residual_add"],
    "graph_0_cpp_fused_add_copy__11": [],                  # a counter's write-back: no theory op, not guessed
    "cpp_fused_frobnicate_3": [],                          # unknown
}


@pytest.mark.parametrize("kernel,members", NAMES.items())
def test_kernel_name_to_members(kernel, members):
    assert kernel_members(kernel)[0] == members


def test_unknown_and_unmapped_names_stay_visible():
    assert aten_names("graph_0_cpp_fused_add_copy__11") == ["add", "copy_"]
    assert kernel_members("graph_0_cpp_fused_add_copy__11") == ([], ["add", "copy_"])
    assert kernel_members("cpp_fused_frobnicate_3") == ([], ["frobnicate"])
    assert group_name([]) == "unattributed"
    members, unmapped = kernel_members("cpp_fused__scaled_dot_product_flash_attention_for_cpu_cat_cos_index_copy_le_"
                                       "mul_sin_where_3")
    assert members == ["rotary", "kv_update"] and unmapped == ["le", "where"]   # the mask's ops are named, not hidden


def test_group_names_are_theory_ops_in_table_order():
    assert group_name(["act_mul"]) == "act_mul"
    g = group_name(["residual_add", "post_attention_norm"])
    assert g == "fused(residual_add+post_attention_norm)" and members_of(g) == ["residual_add", "post_attention_norm"]
    assert set(members_of(g)) <= set(OPS)
    assert row_group(g) == "other" and row_group("fused(rotary+kv_update)") == "attention"
    assert row_group("fused(residual_add+act_mul)") == "mixed" and row_group(FRAMEWORK) == FRAMEWORK


def _ev(name, t0, parent=None, total=0.0, self_=None, shapes=(), device=0.0):
    e = SimpleNamespace(name=name, cpu_parent=parent, time_range=SimpleNamespace(start=t0), input_shapes=list(shapes),
                        cpu_time_total=total, self_cpu_time_total=total if self_ is None else self_,
                        device_time_total=device, self_device_time_total=0.0, device_type=None)
    return e


def _layer_events(spec_q_is_d: bool):
    """One layer and the head of a compiled decode step, as the CPU profiler nests them (times in µs)."""
    lookup = _ev("TorchDynamo Cache Lookup", 0, total=20.0)
    region = _ev("Torch-Compiled Region: 0/0", 1, total=200.0, self_=10.0)
    graph = _ev("## Call CompiledFxGraph abc ##", 2, region, total=185.0, self_=30.0)
    d, q, kv, i, v = 64, 64 if spec_q_is_d else 96, 32, 176, 256
    seq = [("graph_0_cpp_fused_add_embedding_mean_mul_pow_rsqrt_0", ()), ("aten::mm", ([1, d], [d, q], [1, q])),
           ("graph_0_cpp_fused__unsafe_view_cat_neg_slice_transpose_view_1", ()), ("aten::mm", ([1, d], [d, kv], [1, kv])),
           ("graph_0_cpp_fused__to_copy_cat_cos_index_copy_mul_neg_sin_2", ()), ("aten::mm", ([1, d], [d, kv], [1, kv])),
           ("aten::_scaled_dot_product_flash_attention_for_cpu", ([1, 4, 1, 16],)), ("aten::mm", ([1, q], [q, d], [1, d])),
           ("graph_0_cpp_fused__unsafe_view_add_embedding_mean_mul_pow_rsqrt_4", ()),
           ("aten::mm", ([1, d], [d, i], [1, i])), ("aten::mm", ([1, d], [d, i], [1, i])),
           ("graph_0_cpp_fused__unsafe_view_mul_silu_5", ()), ("aten::mm", ([1, i], [i, d], [1, d])),
           ("graph_0_cpp_fused__unsafe_view_add_mean_mul_pow_rsqrt_10", ()), ("aten::mm", ([1, d], [d, v], [1, v])),
           ("graph_0_cpp_fused_add_copy__11", ())]
    events = [lookup, region, graph]
    for n, (name, shapes) in enumerate(seq):
        e = _ev(name, 10 + n, graph, total=10.0, self_=9.0, shapes=shapes, device=5.0)
        events.append(e)
        events.append(_ev("aten::clone", 10 + n + 0.5, e, total=1.0))     # an extern's own sub-op: its time
    return events, from_hf_config({"hidden_size": d, "num_hidden_layers": 1, "num_attention_heads": q // 16,
                                   "num_key_value_heads": 2, "head_dim": 16, "intermediate_size": i,
                                   "vocab_size": v}, "t")


@pytest.mark.parametrize("q_is_d", [True, False])
def test_compiled_step_attribution(q_is_d):
    events, spec = _layer_events(q_is_d)
    per, total = attribute_compiled(events, spec)
    ops = set(per)
    assert {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "lm_head", "attn_core",
            "rotary", "act_mul", "fused(embedding+input_norm)", "fused(rotary+kv_update)",
            "fused(embedding+residual_add+post_attention_norm)", "fused(residual_add+final_norm)",
            "unattributed", FRAMEWORK} == ops
    assert per["unattributed"]["kernel"] == "graph_0_cpp_fused_add_copy__11"
    assert per["q_proj"]["calls"] == per["o_proj"]["calls"] == 1       # q and o share (d, d) when q_is_d: order decides
    assert per["gate_proj"]["calls"] == per["up_proj"]["calls"] == 1
    # 16 units of 10 µs (sub-ops inside them), framework = the wrappers' self time (20 + 10 + 30 µs)
    assert per[FRAMEWORK]["time_s"] == pytest.approx(60e-6)
    assert total == pytest.approx(160e-6 + 60e-6)
    assert sum(r["time_s"] for r in per.values()) == pytest.approx(total)


def test_cuda_attribution_takes_device_time():
    """The CUDA branch (no GPU here): each unit's time is the device time of the kernels it launched; kernel
    events themselves are not counted twice."""
    events, spec = _layer_events(True)
    kernel = SimpleNamespace(name="triton_red_fused_add_mean_mul_pow_rsqrt_0", cpu_parent=None,
                             time_range=SimpleNamespace(start=99), input_shapes=[], cpu_time_total=0.0,
                             self_cpu_time_total=0.0, device_time_total=5.0, self_device_time_total=5.0,
                             device_type=SimpleNamespace(name="CUDA"))
    per, total = attribute_compiled(events + [kernel], spec, cuda=True)
    assert per["q_proj"]["time_s"] == pytest.approx(5e-6)
    assert total == pytest.approx(16 * 5e-6)                 # wrappers launch nothing


def test_cuda_graph_replay_names_device_kernels_alone():
    """CUDA graphs (no GPU here): no CPU op per kernel under the replay; Inductor's kernels are named by their
    names, the GEMMs stay unattributed under their own names, each counted once."""
    _, spec = _layer_events(True)
    launch = _ev("cudaGraphLaunch", 0, total=5.0, device=30.0)
    dev = lambda name, t0, us: SimpleNamespace(name=name, cpu_parent=None, time_range=SimpleNamespace(start=t0),
                                               input_shapes=[], cpu_time_total=0.0, self_cpu_time_total=0.0,
                                               device_time_total=us, self_device_time_total=us,
                                               device_type=SimpleNamespace(name="CUDA"))
    kernels = [dev("triton_red_fused_add_embedding_mean_mul_pow_rsqrt_0", 1, 4.0), dev("sm90_xmma_gemm_f32", 2, 20.0),
               dev("triton_red_fused_add_mean_mul_pow_rsqrt_1", 3, 2.0), dev("triton_poi_fused_mul_silu_2", 4, 6.0),
               dev("sm90_xmma_gemm_f32", 5, 20.0), dev("triton_red_fused_add_mean_mul_pow_rsqrt_3", 6, 2.0)]
    per, total = attribute_compiled([launch] + kernels, spec, cuda=True)
    assert set(per) == {"fused(embedding+input_norm)", "fused(residual_add+post_attention_norm)", "act_mul",
                        "fused(residual_add+final_norm)", "unattributed"}
    assert per["unattributed"]["kernel"] == "sm90_xmma_gemm_f32" and per["unattributed"]["calls"] == 2
    assert total == pytest.approx(54e-6)


def test_a_real_cuda_graph_replay_under_the_graph_call_is_attributed_to_its_kernels():
    """A replay as the profiler records it (torch 2.13: output_code.py's `## Call CompiledFxGraph <key> ##`
    record function; cudagraph_trees.py CUDAGraphNode.run copies the inputs with torch._foreach_copy_, then
    graph.replay(), whose runtime event is cudaGraphLaunch; autograd/profiler.py hangs each device kernel on the
    CPU op its linked_correlation_id names). Before, the copy and the launch were taken for the step's units, so
    the replay branch never ran and the graph's kernels, carried by the graph call, came out as framework."""
    _, spec = _layer_events(True)
    cpu = lambda name, t0, parent, id_, device, self_device=0.0: SimpleNamespace(
        name=name, cpu_parent=parent, cpu_children=[], time_range=SimpleNamespace(start=t0), input_shapes=[],
        cpu_time_total=5.0, self_cpu_time_total=5.0, device_time_total=device, self_device_time_total=self_device,
        device_type=SimpleNamespace(name="CPU"), id=id_, linked_correlation_id=0)
    lookup = cpu("TorchDynamo Cache Lookup", 0, None, 1, 0.0)
    region = cpu("Torch-Compiled Region: 0/0", 1, None, 2, 55.0)
    call = cpu("## Call CompiledFxGraph abc ##", 2, region, 3, 55.0, self_device=54.0)     # carries the kernels
    copy = cpu("aten::_foreach_copy_", 3, call, 4, 1.0, self_device=1.0)
    launch_copy = cpu("cudaLaunchKernel", 3.5, copy, 5, 0.0)
    graph_launch = cpu("cudaGraphLaunch", 4, call, 6, 0.0)
    copy.cpu_children, call.cpu_children, region.cpu_children = [launch_copy], [copy, graph_launch], [call]
    dev = lambda name, t0, us, linked: SimpleNamespace(
        name=name, cpu_parent=None, cpu_children=[], time_range=SimpleNamespace(start=t0), input_shapes=[],
        cpu_time_total=0.0, self_cpu_time_total=0.0, device_time_total=us, self_device_time_total=us,
        device_type=SimpleNamespace(name="CUDA"), id=0, linked_correlation_id=linked)
    kernels = [dev("void at::native::multi_tensor_apply_kernel<TensorListMetadata<2>, CopyFunctor>", 5, 1.0, 4),
               dev("triton_red_fused_add_embedding_mean_mul_pow_rsqrt_0", 6, 4.0, 3), dev("sm90_xmma_gemm_f32", 7, 20.0, 3),
               dev("triton_red_fused_add_mean_mul_pow_rsqrt_1", 8, 2.0, 3), dev("triton_poi_fused_mul_silu_2", 9, 6.0, 3),
               dev("sm90_xmma_gemm_f32", 10, 20.0, 3), dev("triton_red_fused_add_mean_mul_pow_rsqrt_3", 11, 2.0, 3)]
    per, total = attribute_compiled([lookup, region, call, copy, launch_copy, graph_launch] + kernels, spec, cuda=True)
    assert set(per) == {"fused(embedding+input_norm)", "fused(residual_add+post_attention_norm)", "act_mul",
                        "fused(residual_add+final_norm)", "unattributed", FRAMEWORK}
    assert per["unattributed"]["kernel"] == "sm90_xmma_gemm_f32" and per["unattributed"]["calls"] == 2
    assert per[FRAMEWORK]["time_s"] == pytest.approx(1e-6)                 # the input copy only
    assert "aten::_foreach_copy_" in per[FRAMEWORK]["kernel"]
    assert total == pytest.approx(55e-6)                                   # each kernel once


def test_compiled_profile_on_the_cuda_standin(monkeypatch):
    """profile_compiled_point's CUDA branch on the stand-in (CPU tensors, fake torch.cuda): a real Inductor graph
    is profiled with device times, which a CPU build of torch reports as zero: rows, no crash, no division by
    zero. Real device times need a GPU."""
    import torch
    from bench.profiling import compiled as cprof
    from bench.devices.fake import standin_device
    device = standin_device()
    w = torch.randn(16, 8)
    step = torch.compile(lambda ids: (w[ids] * 2).relu(), options={"cpp.enable_kernel_profile": True})

    class Cache:                                               # grows by the tokens passed, as a real one does
        n = 0

        def get_seq_length(self):
            return self.n

    class Model:
        def forward(self, input_ids, cache=None, **_):
            cache.n += input_ids.shape[-1]
            return SimpleNamespace(logits=step(input_ids))
        __call__ = forward
    monkeypatch.setattr(cprof, "new_cache", lambda *a: Cache())
    ids = torch.zeros(1, 1, dtype=torch.long)
    with torch.inference_mode():                               # compiled before profiling, as after timing:
        step(step(ids)[:, -1].argmax(-1, keepdim=True))        # the prompt, then a step's inference tensor
    _, spec = _layer_events(True)
    rows = cprof.profile_compiled_point(Model(), device, "p", ids, 3, "static", 8, "compile", spec, [1e-3] * 3, None)
    assert {(r["phase"], r["step"]) for r in rows} == {("prefill", 0), ("decode", 0), ("decode", 1)}
    assert any(r["kernel"].startswith("graph_") and "cpp_fused" in r["kernel"] for r in rows)
    assert all(r["share"] == 0.0 or 0 < r["share"] <= 1 for r in rows)
    if not torch.cuda.is_available():
        pytest.skip("device times of compiled kernels need a real CUDA device")
