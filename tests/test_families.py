"""Families beyond Llama: theory against transformers' own classes (meta-device parameter counts of the published
configs) and against real caches (tiny random builds run on CPU, cache tensors read after every step)."""
import json
from pathlib import Path

import pytest

from theory.errors import TheoryError
from theory.memory import kv_cache_bytes, weight_bytes
from theory.hfconfig import from_hf_config, load_model

CONFIGS = Path(__file__).parent / "data" / "configs"
PUBLISHED = sorted(CONFIGS.glob("*.json"))
PRESETS = ["llama-2-7b", "llama-3-8b", "mistral-7b", "tinyllama-1.1b"]


def hf_param_count(raw: dict) -> int:
    """numel over distinct parameters (tied weights once) of transformers' class built on the meta device."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM
    from bench.model import PROVENANCE_KEYS
    from theory.hfconfig import unwrap
    cfg = {k: v for k, v in unwrap(raw).items() if k not in PROVENANCE_KEYS}
    config = AutoConfig.for_model(cfg.pop("model_type"), **cfg)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


@pytest.mark.parametrize("path", PUBLISHED + PRESETS, ids=lambda p: getattr(p, "stem", p))
def test_published_config_params_equal_transformers_meta_build(path):
    if isinstance(path, str):
        from theory.hfconfig import PRESET_DIR
        path = PRESET_DIR / f"{path}.json"
    spec = load_model(str(path))
    assert spec.num_params == hf_param_count(json.loads(path.read_text()))


def test_issue_figures_mixtral_gemma2_falcon():
    mixtral = load_model(str(CONFIGS / "mixtral-8x7b.json"))
    assert mixtral.num_params == 46_702_792_704 and mixtral.active_params() == 12_879_925_248
    gemma2 = load_model(str(CONFIGS / "gemma-2-9b-it.json"))
    assert gemma2.tie_word_embeddings and gemma2.windows()[:4] == (4096, None, 4096, None)
    # At 8k, the 21 global layers hold 8192 tokens and the 21 local ones 4096 (not 42 × 4096).
    per_layer_token = 2 * 8 * 256 * 2
    assert kv_cache_bytes(gemma2, 1, 8192, "bf16") == 21 * (8192 + 4096) * per_layer_token
    falcon = load_model(str(CONFIGS / "falcon-7b.json"))
    assert falcon.num_key_value_heads == 1 and falcon.tie_word_embeddings


def test_nested_text_config_and_model_directory(tmp_path):
    d = tmp_path / "gemma-3-12b"
    d.mkdir()
    (d / "config.json").write_text((CONFIGS / "gemma-3-12b-it.json").read_text())
    spec = load_model(str(d))
    assert spec.model_type == "gemma3_text" and spec.name == "gemma-3-12b"
    assert sum(w is None for w in spec.windows()) == 8                    # every 6th of 48 layers is global


def test_hf_cache_by_id_offline(tmp_path, monkeypatch):
    snap = tmp_path / "models--acme--tiny" / "snapshots" / "abc"
    snap.mkdir(parents=True)
    (snap / "config.json").write_text((CONFIGS / "phi-2.json").read_text())
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    assert load_model("acme/tiny").model_type == "phi"


@pytest.mark.parametrize("cfg, message", [
    ({"model_type": "mamba", "hidden_size": 8}, "state-space"),
    ({"model_type": "bloomz", "hidden_size": 8}, "unknown model_type 'bloomz'; known: falcon"),
    ({"hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 1, "num_local_experts": 8}, "ambiguous"),
])
def test_refusals_are_one_line(cfg, message):
    from theory.errors import TheoryError
    with pytest.raises(TheoryError, match=message) as e:
        from_hf_config(cfg, "x")
    assert "\n" not in str(e.value)


# Tiny random versions of each family, built through transformers' classes and run on CPU.
TINY = {"hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 96,
        "vocab_size": 128, "max_position_embeddings": 64, "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2}


def tiny(name: str, **extra) -> dict:
    raw = json.loads((CONFIGS / name).read_text())
    raw = raw.get("text_config", raw) | {"model_type": raw.get("text_config", raw).get("model_type", raw["model_type"])}
    for k in ("n_embd", "n_head", "n_layer", "n_positions", "n_ctx", "num_kv_heads"):
        raw.pop(k, None)
    out = {**raw, **TINY, "num_hidden_layers": 4, **extra}
    if "head_dim" in raw:
        out["head_dim"] = 16
    return out


FAMILIES = {
    "mixtral": tiny("mixtral-8x7b.json", num_local_experts=4, sliding_window=5),
    "qwen2-biases-windows": tiny("qwen2.5-7b-instruct.json", use_sliding_window=True, sliding_window=5,
                                 max_window_layers=2),
    "qwen2-moe": tiny("qwen1.5-moe-a2.7b-chat.json", num_experts=4, moe_intermediate_size=32,
                      shared_expert_intermediate_size=48),
    "gemma2-hybrid": tiny("gemma-2-9b-it.json", sliding_window=5),
    "gemma3": tiny("gemma-3-1b-it.json", sliding_window=5, num_hidden_layers=6, num_key_value_heads=1),
    "gpt-neox": tiny("pythia-1.4b.json"),
    "phi": tiny("phi-2.json", num_key_value_heads=4),
    "phi3": tiny("phi-3-mini-4k.json", sliding_window=5, pad_token_id=0),
    "falcon-mqa": tiny("falcon-7b.json"),
    "gpt2": tiny("gpt2.json"),
    "gemma": tiny("gemma-2-9b-it.json", model_type="gemma", sliding_window=None),   # no Gemma-1 file found
    "olmo": tiny("olmo-1b-hf.json"),
}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_tiny_build_weight_and_cache_bytes_equal_theory_every_step(family):
    import torch
    from transformers import DynamicCache
    from bench.model import build_model, weight_bytes as built_bytes
    from bench.model import Passes, cache_tensor_bytes
    torch.set_num_threads(1)
    spec = from_hf_config(FAMILIES[family], family)
    model = build_model(spec, "cpu", "fp32")
    assert built_bytes(model) == weight_bytes(spec, "fp32")
    cache = DynamicCache(config=model.config)
    batch, prompt = 2, 7
    ids = torch.randint(3, 128, (batch, prompt))
    with torch.no_grad():
        run = Passes(model, cache)                  # also proves every family grows the cache it is given
        out = run(ids)
        seen = [cache_tensor_bytes(cache)]
        for _ in range(3):
            out = run(out.logits[:, -1:].argmax(-1))
            seen.append(cache_tensor_bytes(cache))
    run.check()
    assert seen == [kv_cache_bytes(spec, batch, prompt + s, "fp32", as_run=True) for s in range(4)]


def test_sweep_accepts_a_two_matrix_family(tmp_path):
    from bench.sweep import Point, _validate_point
    path = tmp_path / "pythia-tiny.json"
    path.write_text(json.dumps(FAMILIES["gpt-neox"]))
    _validate_point(Point(model=str(path)), "test")


def test_mixtral_decode_reads_k_experts_at_batch_1_and_all_at_64():
    from theory.ops import Workload, count_ops
    m = load_model(str(CONFIGS / "mixtral-8x7b.json"))
    expert_bytes = 32 * 8 * 3 * 4096 * 14336 * 2                          # all experts, all layers, bf16
    read = lambda b: sum(o.weight_bytes for o in count_ops(m, Workload(batch=b, context_len=100))  # noqa: E731
                         if o.name.startswith("expert_") and o.name != "expert_act_mul")
    assert read(1) == expert_bytes * 2 // 8
    assert read(64) == pytest.approx(expert_bytes, rel=1e-6)
    prefill = {o.name: o for o in count_ops(m, Workload(phase="prefill", prompt_len=10))}
    assert prefill["expert_up_proj"].flops == 32 * 2 * 10 * 2 * 4096 * 14336   # k=2 experts per token


def test_capacity_uses_the_drivers_total_and_says_infeasible_first():
    from theory.cli import main
    from theory.hardware import load_hardware
    from theory.memory import feasibility
    llama = load_model("llama-2-7b")
    a100 = load_hardware("a100-sxm-80gb")
    assert feasibility(llama, a100, 1, 128 * 1024, "bf16") == (True, "")       # 13.5 GB + 68.7 GB < 80 GiB
    marketing = type(a100)(**{**a100.to_json(), "usable_memory_bytes": None})
    assert not feasibility(llama, marketing, 1, 128 * 1024, "bf16")[0]        # but not < 80e9 B


def test_infeasible_table_first_line_and_json(capsys):
    from theory.cli import main
    args = ["--model", str(CONFIGS / "mixtral-8x7b.json"), "--hardware", "h100-sxm-80gb", "--prompt-len", "8192"]
    assert main(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("INFEASIBLE: mixtral-8x7b does not fit: the weights alone (93.4 GB per device)")
    assert any(line.startswith("total") for line in lines)                      # timings still printed
    assert main(args + ["--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["fits"] is False and "weights alone" in out["fits_reason"] and out["time_s"] > 0


def test_tp_beyond_kv_heads_replicates_heads_and_their_weights():
    from theory.memory import kv_bytes_per_token
    from theory.ops import Workload
    from theory.roofline import predict
    from theory.hardware import load_hardware
    m = load_model("llama-3-8b")                                               # 8 kv heads
    assert kv_bytes_per_token(m, "bf16", tp=16) == kv_bytes_per_token(m, "bf16", tp=8)
    kv_w = 32 * 2 * 4096 * 1024                                                # k and v weights (parameters)
    norms = m.param_counts()["norms"]
    rest = m.num_params - norms - kv_w
    assert weight_bytes(m, "bf16", 16) == (rest // 16 + kv_w // 8 + norms) * 2   # one kv head's k/v per device
    hw = load_hardware("h100-sxm-80gb")
    ops = lambda tp: {o.op.name: o.op for o in predict(m, hw, Workload(context_len=999), tp=tp).ops}  # noqa: E731
    assert ops(16)["attn_core"].kv_read_bytes == ops(8)["attn_core"].kv_read_bytes     # one head each
    assert ops(16)["k_proj"].weight_bytes == ops(8)["k_proj"].weight_bytes


def test_cli_unknown_model_type_is_one_line_exit_2(tmp_path, capsys):
    from theory.cli import main
    from theory.cliutil import run_main
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"model_type": "bloomz", "hidden_size": 64}))
    assert run_main(main, ["--model", str(path), "--hardware", "h100-sxm-80gb", "--prompt-len", "8"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown model_type 'bloomz'" in err


def test_analysis_joins_a_family_row_with_its_own_config(tmp_path):
    from analysis.join import row_spec
    path = tmp_path / "gemma2.json"
    path.write_text(json.dumps(FAMILIES["gemma2-hybrid"]))
    shape = {"hidden_size": 64, "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2,
             "head_dim": 16, "intermediate_size": 96, "vocab_size": 128}
    assert row_spec({**shape, "model": str(path)}).windows() == (5, None, 5, None)
    assert row_spec({**shape, "model": ""}).windows() == (None,) * 4          # no config: the recorded shape


def test_gemma2_row_says_it_ran_eager_and_gets_no_guessed_kernels(tmp_path):
    """transformers has no sdpa path for Gemma-2: the row records what ran (eager, materialized scores), and the
    kernel plan, which models Llama-structured layers only, refuses the family instead of composing Llama kernels."""
    from bench.devices.cpu import CpuDevice
    from bench.kernels.cli import main as kernels_main
    from bench.kernels.point import plans_family
    from bench.point.job import PointJob
    from bench.point.measure import measure_point
    from bench.sweep import Point, Sweep
    path = tmp_path / "gemma2.json"
    path.write_text(json.dumps(FAMILIES["gemma2-hybrid"]))
    p = Point(model=str(path), prompt_len=4, generated=2)
    rows, _ = measure_point(PointJob(p, p.point_id("cpu"), CpuDevice(threads=1), Sweep("t", "", 2, 0.0, (), "", 2, 2, 6.0, 0)))
    assert {(r["status"], r["attention"], r["theory_attention"]) for r in rows} == {("ok", "eager", "materialized")}
    assert not plans_family(p.spec()) and plans_family(Point().spec())
    with pytest.raises(ValueError, match="Llama-structured layers only"):
        kernels_main(["--model", str(path), "--prompt-len", "4", "--device", "cpu"])


@pytest.mark.parametrize("model_type", ["mistral", "mixtral", "qwen2_moe", "qwen3_moe", "gemma", "gemma2",
                                        "gemma3_text"])
def test_missing_kv_heads_is_refused_where_the_class_has_its_own_default(model_type):
    """Without num_key_value_heads these classes use a constant default (Mistral 8, Gemma-2 4, ...), not one kv
    head per query head: theory refuses rather than silently predicting an MHA cache several times too large."""
    from transformers import AutoConfig
    cfg = AutoConfig.for_model(model_type).to_dict()
    cfg.pop("num_key_value_heads")
    cfg["num_attention_heads"] = 32
    with pytest.raises(TheoryError, match="no num_key_value_heads"):
        from_hf_config(cfg, model_type)
    kept = AutoConfig.for_model(model_type, num_attention_heads=32)
    assert kept.num_key_value_heads != 32          # the class default really differs from one per head
