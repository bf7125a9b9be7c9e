"""The theory CLI contract and its handling of bad input (one line, non-zero exit, no traceback)."""
import json
import os
import subprocess
import sys

import pytest

from theory.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CONTRACT = ["--model", "llama-2-7b", "--hardware", "a100-sxm-80gb", "--batch", "1", "--prompt-len", "1024",
            "--phase", "decode", "--dtype", "bf16", "--format", "json"]


def run_cli(args, tmp_path=None):
    env = {**os.environ, "PYTHONPATH": ROOT}
    return subprocess.run([sys.executable, "-m", "theory", *args], capture_output=True, text=True, cwd=tmp_path, env=env)


def test_json_contract(capsys):
    assert main(CONTRACT) == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("time_s", "flops", "bytes", "weight_bytes", "kv_cache_bytes", "max_batch_at_context",
                "max_context_at_batch", "groups", "ops"):
        assert key in out
    assert set(out["groups"]) == {"attention", "mlp", "other"}
    assert all(set(("name", "count", "flops", "bytes", "time_s", "bound")) <= set(r) for r in out["ops"])
    assert out["kv_cache_bytes"] == 1025 * 2 * 32 * 4096 * 2          # the cache after the step
    assert out["weight_bytes"] == 6_738_415_616 * 2
    assert sum(g["time_s"] for g in out["groups"].values()) == pytest.approx(out["time_s"])


def test_tp_materialized_additive(capsys):
    assert main(CONTRACT + ["--tp", "2", "--attention", "materialized", "--mode", "additive"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert "comms" in out["groups"] and out["tp"] == 2
    assert {"attn_scores", "attn_softmax", "attn_values"} <= {r["name"] for r in out["ops"]}


def test_table_and_request(capsys):
    assert main(CONTRACT[:-2] + ["--generated", "8"]) == 0
    text = capsys.readouterr().out
    assert "time to first token" in text and "ms" in text and "q_proj" in text


def test_hf_config_with_unrelated_keys_and_user_hardware(tmp_path, capsys):
    cfg = {"architectures": ["LlamaForCausalLM"], "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu",
           "hidden_size": 256, "initializer_range": 0.02, "intermediate_size": 688, "max_position_embeddings": 2048,
           "model_type": "llama", "num_attention_heads": 8, "num_hidden_layers": 2, "num_key_value_heads": 2,
           "pretraining_tp": 1, "rms_norm_eps": 1e-05, "rope_scaling": None, "torch_dtype": "float16",
           "transformers_version": "4.31.0", "use_cache": True, "vocab_size": 1000}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    hw = {"id": "my-box", "name": "mine", "peak_flops_per_s": {"fp32": 1e12}, "memory_bandwidth_bytes_per_s": 5e10,
          "memory_capacity_bytes": 16 * 10**9, "kind": "cpu"}
    (tmp_path / "hw.json").write_text(json.dumps(hw))
    assert main(["--model", str(tmp_path / "config.json"), "--hardware", str(tmp_path / "hw.json"), "--prompt-len", "16",
                 "--dtype", "fp32", "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["kv_cache_bytes"] == 17 * 2 * 2 * 2 * 32 * 4


BAD_HW = {"id": "x", "name": "x", "peak_flops_per_s": {"bf16": 1e12}, "memory_bandwidth_bytes_per_s": 1e9,
          "memory_capacity_bytes": 10**9}


@pytest.mark.parametrize("case,args,files", [
    ("unknown hardware key", ["--hardware", "hw.json"], {"hw.json": {**BAD_HW, "tflops": 3}}),
    ("missing model key", ["--model", "m.json"], {"m.json": {"hidden_size": 64, "num_hidden_layers": 2}}),
    ("heads do not divide width", ["--model", "m.json"],
     {"m.json": {"hidden_size": 100, "num_hidden_layers": 2, "num_attention_heads": 3, "intermediate_size": 8}}),
    ("kv heads do not divide heads", ["--model", "m.json"],
     {"m.json": {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 3,
                 "intermediate_size": 8}}),
    ("zero tokens", ["--phase", "prefill", "--prompt-len", "0"], {}),
    ("negative tokens", ["--prompt-len", "-3"], {}),
    ("unknown preset", ["--model", "llama-9-1t"], {}),
    ("not json", ["--hardware", "hw.json"], {"hw.json": "{oops"}),
    ("missing file", ["--hardware", "nope.json"], {}),
])
def test_bad_input_is_one_line(tmp_path, case, args, files):
    for name, content in files.items():
        (tmp_path / name).write_text(content if isinstance(content, str) else json.dumps(content))
    base = {"--model": "llama-2-7b", "--hardware": "a100-sxm-80gb", "--prompt-len": "128"}
    for i in range(0, len(args), 2):
        base[args[i]] = args[i + 1] if i + 1 < len(args) else None
    argv = [x for k, v in base.items() for x in ((k, v) if v is not None else (k,))]
    r = run_cli(argv, tmp_path)
    assert r.returncode != 0, case
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "error" in r.stderr


def test_presets_list():
    r = run_cli(["--list"])
    assert r.returncode == 0 and "llama-2-7b" in r.stdout and "h100-sxm-80gb" in r.stdout
