"""theory on a kernel calibration: it predicts only what bench kernels plans, honours or refuses every option, and
keeps the capacity figures, warnings and stable JSON keys of a roofline prediction (synthetic calibrations, no torch)."""
import json
import re

import pytest

from test_calibration_interp import synthetic
from theory.cli import main
from theory.cliutil import run_main

TINY = {"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "head_dim": 16, "intermediate_size": 176, "vocab_size": 256,
        "max_position_embeddings": 1024}
STABLE_KEYS = ("time_s", "flops", "bytes", "weight_bytes", "kv_cache_bytes", "max_batch_at_context",
               "max_context_at_batch", "critical_batch", "tokens_per_s", "fits", "fits_reason", "usable_memory_bytes",
               "kv_cache_bytes_as_run", "params", "assumptions", "warnings", "groups", "ops")


@pytest.fixture
def files(tmp_path):
    cal = {**synthetic(), "threads": 1, "device": "cpu", "device_name": "AMD EPYC", "memory_capacity_bytes": 8 * 10**9}
    (tmp_path / "cal.json").write_text(json.dumps(cal))
    (tmp_path / "m.json").write_text(json.dumps(TINY))
    return tmp_path


def theory(files, *args, capsys):
    code = run_main(main, ["--model", str(files / "m.json"), "--hardware", str(files / "cal.json"), *args])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


@pytest.mark.parametrize("extra,needle", [
    ({"model_type": "qwen2"}, "biases"),
    ({"attention_bias": True}, "biases"),
    ({"model_type": "gemma", "num_key_value_heads": 2}, "scaled embedding"),
])
def test_models_bench_kernels_refuses_are_refused_in_one_line(files, capsys, extra, needle):
    (files / "m.json").write_text(json.dumps({**TINY, **extra}))
    code, out, err = theory(files, "--prompt-len", "8", capsys=capsys)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert needle in err and "Llama-structured" in err


def test_bench_kernels_and_theory_share_the_rule():
    from bench.kernels.point import plans_family
    from theory.calibration.family import unplanned_reason
    from theory.hfconfig import from_hf_config
    for extra in ({}, {"model_type": "qwen2"}, {"attention_bias": True}, {"model_type": "gemma"}):
        spec = from_hf_config({**TINY, **extra})
        assert plans_family(spec) == (unplanned_reason(spec) is None)


@pytest.mark.parametrize("args,needle", [(["--mode", "additive"], "--mode additive"),
                                         (["--repeat-kv"], "not --repeat-kv")])
def test_roofline_only_options_are_refused_not_ignored(files, capsys, args, needle):
    code, out, err = theory(files, "--prompt-len", "8", *args, capsys=capsys)
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1


def test_repeat_kv_is_honoured_on_an_eager_calibration_of_a_gqa_model(files):
    from argparse import Namespace
    from theory.calibration.cli import check_honoured
    from theory.hfconfig import from_hf_config
    cal = {**json.loads((files / "cal.json").read_text()), "attention": "eager"}
    a = Namespace(dtype=None, tp=1, kv_dtype=None, mode="max", attention=None, kv_update=None, logits=None,
                  repeat_kv=True)
    check_honoured(a, cal, from_hf_config(TINY))          # eager GQA repeats K/V: what the calibration timed


def test_json_keeps_every_stable_key_capacity_and_the_position_warning(files, capsys):
    code, out, _ = theory(files, "--context-len", "100000", "--format", "json", capsys=capsys)
    got = json.loads(out)
    assert code == 0 and all(k in got for k in STABLE_KEYS), [k for k in STABLE_KEYS if k not in got]
    assert any("max_position_embeddings 1024" in w for w in got["warnings"])
    assert got["fits"] is True and got["max_batch_at_context"] > 0 and got["usable_memory_bytes"] == 8 * 10**9
    assert got["flops"] > 0 and got["bytes"] > 0
    assert sum(g["time_s"] for g in got["groups"].values()) == pytest.approx(got["time_s"])
    assert all({"name", "count", "flops", "bytes", "time_s", "bound"} <= set(o) for o in got["ops"])


def test_a_calibration_without_memory_says_capacity_is_not_computed(files, capsys):
    cal = json.loads((files / "cal.json").read_text())
    del cal["memory_capacity_bytes"]
    (files / "cal.json").write_text(json.dumps(cal))
    code, out, _ = theory(files, "--prompt-len", "8", "--format", "json", capsys=capsys)
    got = json.loads(out)
    assert code == 0 and got["fits"] is None and any("records no device memory" in w for w in got["warnings"])


def test_table_shows_capacity_and_keeps_wide_numbers_apart(files, capsys):
    cal = json.loads((files / "cal.json").read_text())
    for p in cal["passes"]:                  # kernels of seconds: wide figures in every column
        for o in p["ops"].values():
            o.update({k: o[k] * 1e6 for k in ("kernel_s", "ci_low_s", "ci_high_s")})
        p["framework_s"] *= 1e6
    (files / "cal.json").write_text(json.dumps(cal))
    code, out, _ = theory(files, "--prompt-len", "8", capsys=capsys)
    assert code == 0 and "capacity" in out and "max batch at this context" in out
    rows = [line for line in out.splitlines() if line.startswith(("q_proj ", "lm_head "))]
    assert rows and all(len(re.split(r"\s{2,}", line.strip())) == 8 for line in rows), rows


def test_versus_refuses_another_thread_count_and_keeps_ttft_digits(files, capsys):
    from bench.kernels.versus import main as versus_main, ms
    code = run_main(versus_main, ["--calibration", str(files / "cal.json"), "--model", str(files / "m.json"),
                                  "--prompt-len", "8", "--threads", "2"], errors=(ValueError,))
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "1 thread(s), not --threads 2" in err
    assert ms(0.000612) == "0.612" and ms(0.0123) == "12.30" and ms(5.4702) == "5,470.2"


def test_a_calibration_with_full_pass_residuals_adds_and_names_the_residual(files, capsys):
    code, out0, _ = theory(files, "--prompt-len", "8", "--format", "json", capsys=capsys)
    cal = json.loads((files / "cal.json").read_text())
    for p in cal["passes"]:
        p["residual_s"] = 1e-3 * p["op_instances"] / 10
    (files / "cal.json").write_text(json.dumps(cal))
    code, out1, _ = theory(files, "--prompt-len", "8", "--format", "json", capsys=capsys)
    before, after = json.loads(out0), json.loads(out1)
    assert code == 0 and after["residual_s"] > 0 and before["residual_s"] == 0.0
    assert after["time_s"] == pytest.approx(before["time_s"] + after["residual_s"])
    code, table, _ = theory(files, "--prompt-len", "8", capsys=capsys)
    assert "residual   " in table and "full passes beyond their kernels and framework" in table


def test_a_framework_that_fell_with_depth_is_said_held_at_zero_in_the_table(files, capsys):
    cal = json.loads((files / "cal.json").read_text())
    deeper = [{**p, "op_instances": 2 * p["op_instances"], "framework_s": 0.4e-3} for p in cal["passes"]]
    for p in cal["passes"]:                  # a second depth whose passes read less framework than the first's
        p["framework_s"] = 0.5e-3
    cal["passes"] += deeper
    (files / "cal.json").write_text(json.dumps(cal))
    code, table, _ = theory(files, "--prompt-len", "8", capsys=capsys)
    line = next(x for x in table.splitlines() if x.startswith("framework  ") and "per op instance" in x)
    assert code == 0 and "0.00 µs per op instance" in line and "per-instance part held at 0" in line
