"""theory says every choice it makes for the user, or refuses: peaks that stand in for another dtype, MoE critical
batches, replicated kv heads, class defaults, position tables, memory figures, and options named by their flag."""
import json

import pytest

from theory.cli import main
from theory.cliutil import run_main

ROOT_CFG = "tests/data/configs"


def theory(capsys, *args):
    code = run_main(main, list(args))
    cap = capsys.readouterr()
    return code, cap.out, cap.err


@pytest.mark.parametrize("hw,dtype", [("a100-sxm-80gb", "fp8"), ("t4", "bf16")])
def test_a_dtype_the_device_lacks_is_refused_not_run_on_another_peak(capsys, hw, dtype):
    code, out, err = theory(capsys, "--model", "llama-2-7b", "--hardware", hw, "--dtype", dtype, "--context-len", "64")
    assert code == 2 and out == "" and f"lists no {dtype} peak" in err and len(err.strip().splitlines()) == 1


def test_tf32_on_a_device_without_it_says_the_fp32_peak_stands_in_on_the_first_line(capsys):
    code, out, _ = theory(capsys, "--model", "tinyllama-1.1b", "--hardware", "t4", "--dtype", "tf32",
                          "--context-len", "64")
    assert code == 0 and out.splitlines()[0].startswith("STAND-IN:") and "fp32 peak stands in" in out.splitlines()[0]
    code, out, _ = theory(capsys, "--model", "tinyllama-1.1b", "--hardware", "t4", "--dtype", "tf32",
                          "--context-len", "64", "--format", "json")
    assert any("stands in" in a for a in json.loads(out)["assumptions"])


def test_moe_critical_batch_is_given_for_the_expert_matmuls_that_dominate(capsys):
    code, out, _ = theory(capsys, "--model", f"{ROOT_CFG}/mixtral-8x7b.json", "--hardware", "h100-sxm-80gb",
                          "--prompt-len", "1024", "--batch", "64", "--format", "json")
    got = json.loads(out)
    experts, dense = got["critical_batch_by_group"]["experts"], got["critical_batch_by_group"]["dense"]
    assert experts["critical_batch"] == pytest.approx(got["critical_batch"] * 8 / 2)      # batch·k/E tokens each
    assert experts["share_of_time"] > 0.8 and dense["share_of_time"] == pytest.approx(1 - experts["share_of_time"])
    code, out, _ = theory(capsys, "--model", f"{ROOT_CFG}/mixtral-8x7b.json", "--hardware", "h100-sxm-80gb",
                          "--prompt-len", "1024", "--batch", "64")
    line = next(x for x in out.splitlines() if x.startswith("critical batch"))
    assert "expert matmuls" in line and "1,181" in line


def test_tp_beyond_the_kv_heads_says_they_are_replicated(capsys):
    code, out, _ = theory(capsys, "--model", "llama-3-70b", "--hardware", "h100-sxm-80gb", "--tp", "16",
                          "--context-len", "64", "--format", "json")
    assert code == 0 and any("replicated" in a and "8 kv heads" in a for a in json.loads(out)["assumptions"])
    code, out, _ = theory(capsys, "--model", "llama-3-70b", "--hardware", "h100-sxm-80gb", "--tp", "8",
                          "--context-len", "64", "--format", "json")
    assert not any("replicated" in a for a in json.loads(out)["assumptions"])


def test_qwen2_without_kv_heads_is_refused_as_transformers_default_differs(tmp_path, capsys):
    cfg = json.loads(open(f"{ROOT_CFG}/qwen2.5-7b-instruct.json").read())
    del cfg["num_key_value_heads"]
    (tmp_path / "q.json").write_text(json.dumps(cfg))
    code, _, err = theory(capsys, "--model", str(tmp_path / "q.json"), "--hardware", "h100-sxm-80gb",
                          "--context-len", "64")
    assert code == 2 and "own default (32)" in err


def test_an_unknown_model_is_said_before_missing_options(capsys):
    code, _, err = theory(capsys, "--model", "nosuch", "--hardware", "a100-sxm-80gb")
    assert code == 2 and "unknown model 'nosuch'" in err and "missing" not in err


@pytest.mark.parametrize("flag", ["--prompt-len", "--context-len", "--batch"])
def test_a_negative_size_names_its_flag(capsys, flag):
    args = ["--model", "llama-2-7b", "--hardware", "a100-sxm-80gb", "--prompt-len", "8"]
    code, _, err = theory(capsys, *args, flag, "-5")
    assert code == 2 and f"{flag} must be at least" in err


def test_usable_memory_above_capacity_is_refused(tmp_path, capsys):
    hw = json.loads(open("theory/data/hardware/a100-sxm-80gb.json").read())
    hw["usable_memory_bytes"] = 2 * hw["memory_capacity_bytes"]
    (tmp_path / "hw.json").write_text(json.dumps(hw))
    code, _, err = theory(capsys, "--model", "llama-2-7b", "--hardware", str(tmp_path / "hw.json"), "--context-len", "8")
    assert code == 2 and "usable_memory_bytes" in err and "exceeds memory_capacity_bytes" in err


def test_cpu_memory_is_called_ram_not_a_driver_total(tmp_path, capsys):
    hw = {"id": "box", "name": "box", "peak_flops_per_s": {"fp32": 1e11}, "memory_bandwidth_bytes_per_s": 1e10,
          "memory_capacity_bytes": 16 * 10**9, "kind": "cpu"}
    (tmp_path / "hw.json").write_text(json.dumps(hw))
    code, out, _ = theory(capsys, "--model", "tinyllama-1.1b", "--hardware", str(tmp_path / "hw.json"),
                          "--context-len", "8")
    line = next(x for x in out.splitlines() if x.startswith("memory"))
    assert code == 0 and "driver" not in line and "marketing" not in line and "RAM" in line


def test_learned_positions_past_the_table_are_refused_up_front(tmp_path, capsys):
    cfg = {**json.loads(open(f"{ROOT_CFG}/gpt2.json").read()), "n_positions": 8}
    (tmp_path / "g.json").write_text(json.dumps(cfg))
    code, _, err = theory(capsys, "--model", str(tmp_path / "g.json"), "--hardware", "a100-sxm-80gb",
                          "--phase", "prefill", "--prompt-len", "19")
    assert code == 2 and "learned position table of 8 rows" in err
    code, _, _ = theory(capsys, "--model", str(tmp_path / "g.json"), "--hardware", "a100-sxm-80gb",
                        "--phase", "prefill", "--prompt-len", "8")
    assert code == 0
