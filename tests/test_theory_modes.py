"""theory.modes: the op table as each execution mode runs it (torch-free)."""
import subprocess
import sys

import pytest

from theory.hardware import hardware_presets
from theory.hfconfig import from_hf_config
from theory.modes import compiled_kernels, fusion_saved_bytes, predict_mode
from theory.ops import Workload
from theory.roofline import predict

SPEC = from_hf_config({"hidden_size": 512, "num_hidden_layers": 4, "num_attention_heads": 8, "num_key_value_heads": 4,
                       "head_dim": 64, "intermediate_size": 1376, "vocab_size": 8192}, "d512-L4")
HW = hardware_presets()["a100-sxm-80gb"]
NO_OVERHEAD = type(HW)(**{**HW.to_json(), "launch_overhead_s": 0.0})


@pytest.mark.parametrize("w", [Workload(phase="decode", context_len=64, dtype="fp32"),
                               Workload(phase="prefill", prompt_len=512, batch=4, dtype="bf16")])
def test_eager_is_the_op_table_and_compile_removes_only_the_norms_re_reads(w):
    eager = predict_mode(SPEC, HW, w, "eager")
    ref = predict(SPEC, NO_OVERHEAD, w)
    assert eager.bytes == ref.bytes and eager.flops == ref.flops and eager.time_s == pytest.approx(ref.time_s)
    for mode in ("compile", "compile-static", "cudagraphs"):
        c = predict_mode(SPEC, HW, w, mode)
        assert c.flops == ref.flops
        tokens = w.batch * w.query_tokens
        saved = 2 * SPEC.num_hidden_layers * tokens * SPEC.hidden_size * (4 if w.dtype == "fp32" else 2)
        assert ref.bytes - c.bytes == saved == fusion_saved_bytes(SPEC, w)
        changed = {o.op.name for o, r in zip(c.ops, ref.ops) if o.op.act_bytes != r.op.act_bytes}
        assert changed == {"input_norm", "post_attention_norm", "final_norm"}


def test_fusion_saving_is_negligible_at_decode_and_a_few_percent_in_prefill():
    dec = Workload(phase="decode", context_len=64, dtype="fp32")
    pre = Workload(phase="prefill", prompt_len=2048, batch=8, dtype="fp32")
    assert fusion_saved_bytes(SPEC, dec) / predict(SPEC, NO_OVERHEAD, dec).bytes < 0.001
    assert fusion_saved_bytes(SPEC, pre) / predict(SPEC, NO_OVERHEAD, pre).bytes > 0.03


def test_kernel_counts_per_mode():
    assert compiled_kernels(SPEC, "eager") is None
    assert compiled_kernels(SPEC, "cudagraphs") == 1
    assert compiled_kernels(SPEC, "compile-static") == 14 * 4 + 3


def test_theory_modes_never_imports_torch():
    code = "import sys, theory.modes, bench.sweep; assert 'torch' not in sys.modules, 'torch imported'"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
