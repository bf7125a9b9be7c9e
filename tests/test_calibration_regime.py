"""Issue 21: kernels interpolated within their regime over the rate's variables, the framework fitted over depths,
calibrations merged, the run archive, leave-one-out classes (synthetic data, nothing timed)."""
import math

import pandas as pd
import pytest

from analysis.loo import point_classes
from bench.kernels.rounds import assemble_archive, round_rows
from theory.calibration.framework import framework_estimate
from theory.calibration.merge import merge
from theory.calibration.regime import Sized, estimate, kernel_class, pools_phases, rate_above_in_x0
from theory.errors import TheoryError


def test_a_decode_linear_is_never_interpolated_toward_prefill_matmuls():
    # decode (m=1) slow per FLOP, prefill (m=64) fast: pooled by work, the decode instance would come out too fast
    inst = [Sized("decode", 1, 1e6, 1e-3), Sized("decode", 1, 4e6, 4e-3), Sized("prefill", 64, 1e6, 2e-3),
            Sized("prefill", 64, 4e6, 8e-3)]
    for pool in (False, True):                                    # linears pool the phases: m = 1 is still decode's
        e = estimate(inst, "decode", 1, 2e6, pool_phases=pool)
        assert e.status == "interpolated" and e.time_s == pytest.approx(2e-3) and not e.regime_crossed
    only_prefill = estimate(inst[2:], "decode", 1, 2e6)
    assert only_prefill.status == "extrapolated" and only_prefill.regime_crossed


def test_a_linear_at_batch_64_takes_the_64_token_matmul_a_prefill_ran():
    # decode at m = 1 and 16 (matrix-vector-like), a prefill at m = 64: the same F.linear at m = 64 either way
    inst = [Sized("decode", 1, 1e6, 1e-3), Sized("decode", 16, 1e6, 1.2e-3), Sized("prefill", 64, 1e6, 3e-3)]
    pooled = estimate(inst, "decode", 64, 1e6, pool_phases=True)
    assert pooled.status == "calibrated" and pooled.time_s == pytest.approx(3e-3) and not pooled.regime_crossed
    apart = estimate(inst, "decode", 64, 1e6)                     # the other kernel classes: phases kept apart
    assert apart.status == "extrapolated" and apart.extrapolation_ratio == pytest.approx(4)
    between = estimate(inst, "decode", 32, 1e6, pool_phases=True)  # between 16 (decode) and 64 (prefill)
    assert between.status == "interpolated" and 1.2e-3 < between.time_s < 3e-3


def test_pooling_never_reaches_further_than_the_own_phase_and_needs_the_own_phase():
    inst = [Sized("decode", 4, 1e6, 1e-3), Sized("decode", 4, 4e6, 4e-3), Sized("decode", 64, 1e6, 2e-3),
            Sized("decode", 64, 4e6, 8e-3), Sized("prefill", 16, 1e6, 1.5e-3)]        # prefill: one weight size
    e = estimate(inst, "decode", 16, 4e6, pool_phases=True)      # the prefill's m = 16 would extrapolate x4 in n·k
    assert e.status == "interpolated" and e.extrapolation_ratio == 1.0
    assert e.time_s == pytest.approx(estimate(inst, "decode", 16, 4e6).time_s)
    none = estimate(inst[4:], "decode", 16, 1e6, pool_phases=True)   # no decode instance at all: crossed, as ever
    assert none.status == "extrapolated" and none.regime_crossed


def test_beyond_every_calibrated_size_a_linear_keeps_its_own_phase():
    inst = [Sized("decode", 1, 1e6, 1e-3), Sized("prefill", 64, 1e6, 3e-3)]
    e = estimate(inst, "prefill", 256, 1e6, pool_phases=True)
    assert e.status == "extrapolated" and e.time_s == pytest.approx(12e-3)     # the prefill's own rate, not 1 → 64's


def test_only_linears_pool_the_phases():
    assert pools_phases("linear") and not any(pools_phases(c) for c in ("norm", "attn_core", "rotary", "kv_update"))


def test_extrapolation_is_marked_with_how_far_and_below_the_sizes_follows_the_clipped_local_slope():
    inst = [Sized("decode", 1, 1e6, 1e-3), Sized("decode", 1, 2e6, 1.2e-3)]
    e = estimate(inst, "decode", 1, 0.25e6)
    assert e.status == "extrapolated" and e.extrapolation_ratio == pytest.approx(4)
    assert e.time_s == pytest.approx(1e-3 * 0.25 ** math.log2(1.2))
    falling = [Sized("decode", 1, 1e6, 1e-3), Sized("decode", 1, 2e6, 0.5e-3)]  # time falling with size: held
    assert estimate(falling, "decode", 1, 0.25e6).time_s == pytest.approx(1e-3)


def test_beyond_the_largest_calibrated_size_its_achieved_rate_is_kept():
    # the local slope between two small, overhead-bound sizes (here 0.26) would carry that overhead's flat time far
    # beyond them; above the calibrated sizes the time grows with the work from the largest one instead
    inst = [Sized("decode", 1, 1e6, 1e-3), Sized("decode", 1, 2e6, 1.2e-3)]
    e = estimate(inst, "decode", 1, 8e6)
    assert e.status == "extrapolated" and e.extrapolation_ratio == pytest.approx(4)
    assert e.time_s == pytest.approx(4.8e-3)


def test_above_a_decode_linears_calibrated_tokens_per_pass_the_clipped_local_slope_stays():
    # decode matrix-vector products at m = 1, 4, 16: their time is set by the weights, not the few tokens
    inst = [Sized("decode", m, 1e6, t) for m, t in ((1, 1.0e-3), (4, 1.05e-3), (16, 1.2e-3))]
    e = estimate(inst, "decode", 64, 1e6, pool_phases=True, x0_rate_above=rate_above_in_x0("linear", "decode"))
    assert e.status == "extrapolated" and e.time_s == pytest.approx(1.2e-3 * 4 ** math.log(1.2 / 1.05, 4))
    assert not rate_above_in_x0("linear", "decode")
    assert rate_above_in_x0("linear", "prefill") and rate_above_in_x0("attn_core", "decode")


def test_linears_share_one_kernel_class_and_norms_another():
    assert {kernel_class(o) for o in ("q_proj", "down_proj", "lm_head")} == {"linear"}
    assert {kernel_class(o) for o in ("input_norm", "final_norm")} == {"norm"}
    assert kernel_class("attn_core") == "attn_core"


def _p(n, fw):
    return {"phase": "decode", "op_instances": n, "framework_s": fw}


def test_the_framework_is_a_fixed_part_plus_a_part_per_instance_from_two_depths():
    passes = [_p(20, 1e-3 + 20 * 2e-5), _p(80, 1e-3 + 80 * 2e-5)]
    f = framework_estimate(passes, "decode", 320)
    assert f.fixed_s == pytest.approx(1e-3) and f.per_instance_s == pytest.approx(2e-5) and not f.one_depth
    assert f.time_s == pytest.approx(1e-3 + 320 * 2e-5) and not f.inside


def test_a_framework_line_held_at_zero_says_which_part_was_held():
    # the deeper calibration model read less framework (a smoke `bench kernels`, d=512 L=2 and d=1024 L=4,
    # 2026-12-04): the slope is held at 0, the cost is the depths' mean, and the estimate says so
    falling = framework_estimate([_p(20, 0.50e-3), _p(80, 0.43e-3)], "decode", 50)
    assert falling.per_instance_s == 0.0 and falling.time_s == pytest.approx(0.465e-3) and falling.held == "slope"
    # a line whose fixed part would be negative goes through the origin instead
    steep = framework_estimate([_p(20, 0.1e-3), _p(80, 1.0e-3)], "decode", 50)
    assert steep.fixed_s == 0.0 and steep.held == "fixed"
    fine = framework_estimate([_p(20, 1e-3 + 20 * 2e-5), _p(80, 1e-3 + 80 * 2e-5)], "decode", 50)
    assert fine.held is None


def test_one_depth_says_it_has_no_fixed_part():
    f = framework_estimate([_p(20, 2e-3), _p(20, 4e-3)], "decode", 20)
    assert f.one_depth and f.fixed_s is None and f.time_s == pytest.approx(3e-3)


def test_a_decode_steps_framework_comes_from_calibrated_steps_of_its_own_kind():
    # the first decode step after a prefill costs ~2x a later one (framework.csv of the 2026-12-02 default run)
    first = lambda n, fw: {**_p(n, fw), "prompt_len": 64, "context_len": 64}
    later = lambda n, fw: {**_p(n, fw), "prompt_len": 64, "context_len": 70}
    passes = [first(20, 0.68e-3), later(20, 0.32e-3), first(80, 1.4e-3), later(80, 0.7e-3)]
    assert framework_estimate(passes, "decode", 20, "decode-later").time_s == pytest.approx(0.32e-3)
    assert framework_estimate(passes, "decode", 20, "decode-first").time_s == pytest.approx(0.68e-3)
    assert framework_estimate(passes, "decode", 20).time_s == pytest.approx(0.5e-3)        # both kinds pooled
    only_first = [first(20, 0.68e-3), first(80, 1.4e-3)]       # none of the later kind: all decode passes
    assert framework_estimate(only_first, "decode", 20, "decode-later").time_s == pytest.approx(0.68e-3)


def test_merge_refuses_kernels_from_another_box_and_keeps_each_pass_model():
    a = {"format": "inference-gaps-kernel-calibration/2", "dtype": "fp32", "attention": "sdpa", "cache": "dynamic",
         "device_name": "x", "model": {"name": "a"}, "workloads": [{"batch": 1}], "passes": [{"phase": "decode"}]}
    b = {**a, "model": {"name": "b"}}
    m = merge([a, b])
    assert [p["model"]["name"] for p in m["passes"]] == ["a", "b"] and len(m["models"]) == 2
    with pytest.raises(TheoryError, match="device_name"):
        merge([a, {**b, "device_name": "y"}])


def test_loo_classes_are_the_axes_a_point_differs_in():
    base = dict(hidden_size=512, intermediate_size=1376, num_hidden_layers=4, batch=1, prompt_len=64, generated=16,
                cache="dynamic", attention="sdpa", num_attention_heads=8, num_key_value_heads=4, head_dim=64,
                vocab_size=8192)
    pts = pd.DataFrame([{**base, "point_id": "a"}, {**base, "point_id": "b"},
                        {**base, "point_id": "c", "num_hidden_layers": 8},
                        {**base, "point_id": "d", "hidden_size": 256, "intermediate_size": 688,
                         "num_attention_heads": 4, "num_key_value_heads": 2}])
    assert point_classes(pts) == {"a": ["base"], "b": ["base"], "c": ["depth"], "d": ["width"]}


def test_the_run_archive_keeps_every_round_and_the_set_not_kept(tmp_path):
    from bench.store.files import atomic_write, csv_text
    from bench.kernels.rounds import ROUND_COLUMNS
    (tmp_path / "points").mkdir()
    rows = round_rows("p1", {"k": [1e-3, 2e-3]}, [[5e-3, 1e-3]], [1])
    atomic_write(tmp_path / "points" / "p1.rounds.csv", csv_text(rows, ROUND_COLUMNS))
    (tmp_path / "points" / "p1.other.csv").write_text("point_id,time_s\np1,1\n")
    assemble_archive(tmp_path, ["p1"], lambda d, p: True)
    text = (tmp_path / "kernel_rounds.csv").read_text().splitlines()
    assert text[1:] == ["p1,kernel,k,0,0,0.001", "p1,kernel,k,1,1,0.002", "p1,tiny,prefill,0,0,0.005",
                        "p1,tiny,decode:0,0,0,0.001"]
    assert (tmp_path / "remeasured.csv").read_text() == "point_id,time_s\np1,1\n"


def test_a_run_with_no_predictable_point_still_renders_its_loo_section():
    from analysis.loo import _summarise, loo_md
    empty = _summarise([], {}, ["p1", "p2"], [], [])
    lines = loo_md({"measured": empty, "drift_scaled": empty})
    assert any("not predictable" in line and "p1, p2" in line for line in lines)


def _attn(batch: int, heads: int, query: int, keys: int, head_dim: int = 64):
    from theory.ops import SOFTMAX_FLOPS_PER_SCORE, OpCount
    scores = batch * heads * query * keys
    return OpCount("attn_core", "attention", 1, scores * (4 * head_dim + SOFTMAX_FLOPS_PER_SCORE), 0, 0, 0, 0, True)


def test_the_attention_core_is_sized_by_one_problem_and_the_number_of_problems():
    from theory.calibration.regime import op_size
    assert op_size(_attn(1, 8, 1024, 1024), 64, "fp32", 8) == (1024 * 1024 * 64, 8.0)
    assert op_size(_attn(64, 8, 64, 64), 64, "fp32", 512) == (64 * 64 * 64, 512.0)
    assert op_size(_attn(1, 8, 1, 80, 128), 128, "fp32", 8) == (80 * 128, 8.0)       # decode: one query per head


def test_a_long_prompt_takes_the_rate_of_the_largest_problem_not_of_the_most_problems():
    # Prefill attention as timed on one box (20261202T190336Z): T=64 at batch 1 and batch 64, T=256 at batch 1.
    # Per score, batch 64 of 64 x 64 ran 2.5x slower than batch 1 of 256 x 256; a T=1024 prompt at batch 1 takes
    # the 256 x 256 problem's rate (16x its scores: 2.678 ms x 16), not batch 64's (4x its scores: 4 x 21.2 ms).
    from theory.calibration.regime import op_size
    timed = [(_attn(1, 8, 64, 64), 8, 0.404e-3), (_attn(64, 8, 64, 64), 512, 21.2e-3),
             (_attn(1, 8, 256, 256), 8, 2.678e-3)]
    inst = [Sized("prefill", *op_size(row, 64, "fp32", n), t) for row, n, t in timed]
    e = estimate(inst, "prefill", *op_size(_attn(1, 8, 1024, 1024), 64, "fp32", 8))
    assert e.status == "extrapolated" and e.time_s == pytest.approx(16 * 2.678e-3)
    assert e.extrapolation_ratio == pytest.approx(16)
    mid = estimate(inst, "prefill", *op_size(_attn(16, 8, 64, 64), 64, "fp32", 128))     # between the batches
    slope = math.log(21.2 / 0.404) / math.log(512 / 8)                                   # log-log along the batch
    assert mid.status == "interpolated" and mid.time_s == pytest.approx(0.404e-3 * 16 ** slope)


def test_a_calibration_sized_in_an_older_basis_is_sized_again():
    from theory.calibration.predict import FORMAT, sized
    from theory.calibration.regime import SIZE_BASIS
    from theory.model import ModelSpec
    m = ModelSpec(name="t", hidden_size=256, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                  head_dim=64, intermediate_size=688, vocab_size=512)
    shape = {k: getattr(m, k) for k in ("hidden_size", "num_hidden_layers", "num_attention_heads",
                                        "num_key_value_heads", "head_dim", "intermediate_size", "vocab_size")}
    p = {"phase": "prefill", "batch": 2, "prompt_len": 32, "context_len": 0, "framework_s": 1e-4,
         "model": {"name": "t", **shape},
         "ops": {"attn_core": {"count": 2, "kernel_s": 1e-4, "work": 1.0, "size": [2 * 4 * 32 * 32, 64.0]}}}
    old = {"format": FORMAT, "dtype": "fp32", "attention": "sdpa", "cache": "dynamic", "passes": [p]}
    again = sized(old, m)
    assert again["size_basis"] == SIZE_BASIS
    assert again["passes"][0]["ops"]["attn_core"]["size"] == [32 * 33 // 2 * 64, 8.0]   # causal; batch 2 x 4 heads
    assert sized(again, m) is again                                                         # current: kept
    assert again["passes"][0]["ops"]["attn_core"]["row_len"] == 0.0                        # not a linear


def test_a_residual_is_fitted_over_depth_like_the_framework_and_may_be_negative():
    passes = [{**_p(20, 1e-3), "residual_s": 2e-3}, {**_p(40, 1e-3), "residual_s": 4e-3}, _p(60, 1e-3)]
    f = framework_estimate(passes, "decode", 80, key="residual_s")       # the pass without one is not a point
    assert f.time_s == pytest.approx(8e-3) and f.depths == 2 and not f.inside
    neg = framework_estimate([{**_p(20, 1e-3), "residual_s": -1e-3}], "decode", 40, key="residual_s")
    assert neg.time_s == pytest.approx(-2e-3) and neg.one_depth
    # two negative depths keep their own trend (a cost's clamps would turn it round: through the origin)
    two = [{**_p(20, 1e-3), "residual_s": -2e-3}, {**_p(40, 1e-3), "residual_s": -1e-3}]
    f = framework_estimate(two, "decode", 60, key="residual_s")
    assert f.fixed_s == pytest.approx(-3e-3) and f.per_instance_s == pytest.approx(5e-5)
    assert f.time_s == pytest.approx(0.0, abs=1e-12)
    assert framework_estimate([_p(20, 2e-3), _p(40, 1e-3)], "decode", 60).per_instance_s >= 0   # a cost: held


def _rows(beta, shapes, m=1):
    """Decode linear instances timed exactly as time = n·k · 1e-10 s · k^beta (no effect of the weight size)."""
    return [Sized("decode", m, n * k, n * k * 1e-10 * k ** beta, k=k) for k, n in shapes]


LLAMA_LIKE = [(1536, 1536), (1536, 4096), (4096, 1536), (2560, 2560), (2560, 6912), (6912, 2560)]


def test_a_linears_row_length_exponent_is_read_from_its_instances_and_clipped():
    from theory.calibration.regime import row_exponent
    assert row_exponent(_rows(-0.2, LLAMA_LIKE)) == pytest.approx(-0.2)
    assert row_exponent(_rows(+0.3, LLAMA_LIKE)) == 0.0            # longer rows dearer per element: held at 0
    assert row_exponent(_rows(-1.5, LLAMA_LIKE)) == -1.0           # time falling as rows lengthen: held at -1
    assert row_exponent(_rows(-0.2, [(1536, 256), (1536, 1536), (1536, 4096)])) == 0.0     # one row length
    assert row_exponent(_rows(-0.2, [(1536, 1536), (4096, 576)])) == 0.0                   # two instances


def test_gate_and_down_of_one_weight_size_are_told_apart_by_their_row_length():
    inst = _rows(-0.2, LLAMA_LIKE)
    gate = estimate(inst, "decode", 1, 2048 * 5632, k=2048)         # tinyllama's gate and down: between the sizes
    down = estimate(inst, "decode", 1, 2048 * 5632, k=5632)
    assert gate.time_s == pytest.approx(2048 * 5632 * 1e-10 * 2048 ** -0.2)
    assert down.time_s == pytest.approx(2048 * 5632 * 1e-10 * 5632 ** -0.2)
    blind = estimate(inst, "decode", 1, 2048 * 5632)                 # no row length: the weight size alone
    assert down.time_s < blind.time_s < gate.time_s


def test_a_shape_is_calibrated_only_when_its_row_length_was_timed_too():
    inst = _rows(-0.2, LLAMA_LIKE)
    assert estimate(inst, "decode", 1, 1536 * 4096, k=1536).status == "calibrated"       # the gate itself
    other = estimate(inst, "decode", 1, 1536 * 4096, k=2048)          # its weight size at a row length not timed
    assert other.status == "interpolated"
    assert other.time_s == pytest.approx(1536 * 4096 * 1e-10 * 2048 ** -0.2)


def test_theorys_op_table_gives_each_linear_its_row_length():
    from theory.ops import Workload, count_ops
    from theory.calibration.regime import row_length
    from theory.model import ModelSpec
    m = ModelSpec(name="t", hidden_size=256, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                  head_dim=64, intermediate_size=688, vocab_size=512)
    rows = {r.name: r for r in count_ops(m, Workload(phase="decode", batch=1, prompt_len=8, context_len=8,
                                                     dtype="fp32"))}
    assert {op: row_length(rows[op]) for op in ("q_proj", "o_proj", "gate_proj", "down_proj", "lm_head")} == \
        {"q_proj": 256.0, "o_proj": 256.0, "gate_proj": 256.0, "down_proj": 688.0, "lm_head": 256.0}
    assert row_length(rows["input_norm"]) == 0.0
