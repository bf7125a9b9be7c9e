"""Input checks and the CLIs: numbers checked (one line), long requests in bounded time, help and examples that
explain themselves and run as written, the declared dependency floors."""
import json
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, TINY_SWEEP, subprocess_env
from theory.cli import main as theory_main
from theory.cliutil import run_main
from theory.errors import TheoryError

BASE = ["--model", "llama-2-7b", "--hardware", "a100-sxm-80gb"]


def theory(argv, capsys):
    rc = run_main(theory_main, argv)
    out = capsys.readouterr()
    return rc, out.out, out.err


# ---- item 9: NaN, ±inf, negatives and strings are one line


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


HW = {"id": "x", "name": "x", "peak_flops_per_s": {"bf16": 1e14}, "memory_bandwidth_bytes_per_s": 1e12,
      "memory_capacity_bytes": 10**10}
CFG = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 128,
       "vocab_size": 100}


@pytest.mark.parametrize("kind,text", [
    ("hw", json.dumps(HW).replace("1000000000000.0", "NaN")),
    ("hw", json.dumps(HW).replace("1000000000000.0", "Infinity")),
    ("hw", json.dumps({**HW, "launch_overhead_s": 1e400}).replace("inf", "Infinity")),
    ("model", json.dumps({**CFG, "rope_theta": "abc"})),
    ("model", json.dumps({**CFG, "rope_theta": float("nan")})),
    ("model", json.dumps({**CFG, "max_position_embeddings": -5})),
    ("model", json.dumps({**CFG, "rms_norm_eps": -1e-5})),
    ("model", json.dumps({**CFG, "vocab_size": 0})),
])
def test_non_finite_or_out_of_range_numbers_are_one_line(tmp_path, capsys, kind, text):
    hw = write(tmp_path, "hw.json", text if kind == "hw" else json.dumps(HW))
    model = write(tmp_path, "config.json", text if kind == "model" else json.dumps(CFG))
    rc, out, err = theory(["--model", model, "--hardware", hw, "--prompt-len", "8", "--format", "json"], capsys)
    assert rc == 2 and out == "" and len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize("flag,value", [("--reserve-fraction", "nan"), ("--reserve-fraction", "1.5")])
def test_cli_floats_are_checked(capsys, flag, value):
    rc, out, err = theory(BASE + ["--prompt-len", "8", flag, value], capsys)
    assert rc == 2 and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("warmup", [float("nan"), 1e12, float("inf")])
def test_sweep_warmup_must_be_finite_and_sane(warmup):
    from bench.sweep import parse_sweep
    obj = {**TINY_SWEEP, "warmup_s": warmup}
    with pytest.raises(TheoryError, match="warmup_s"):
        parse_sweep(obj, json.dumps(obj), "s")


@pytest.mark.parametrize("args", [["--max-bytes", "2"], ["--repeats", "0"], ["--timeout-s", "0"],
                                  ["--timeout-s", "nan"], ["--warmup", "-1"]])
def test_comms_options_are_checked_before_anything_starts(capsys, args):
    from bench.comms import main as comms_main
    rc = run_main(comms_main, args, errors=(ValueError,))
    err = capsys.readouterr().err
    assert rc == 2 and "torchrun" not in err and len(err.strip().splitlines()) == 1


# ---- item 10: a request of 10^12 tokens is predicted in bounded time, exactly


def test_huge_request_in_bounded_time(capsys):
    t0 = time.perf_counter()
    rc, out, err = theory(BASE + ["--prompt-len", "128", "--generated", str(10**12), "--format", "json"], capsys)
    assert rc == 0 and time.perf_counter() - t0 < 5
    assert json.loads(out)["request"]["decode_steps"] == 10**12 - 1


@pytest.mark.parametrize("model,extra", [("llama-2-7b", {}), ("mistral-7b", {}),
                                         ("llama-2-7b", {"kv_update": "copy", "attention": "materialized"})])
def test_segmented_request_equals_step_by_step(model, extra):
    from theory.hardware import load_hardware
    from theory.hfconfig import load_model
    from theory.ops import Workload
    from theory.roofline import predict
    from theory.request import sum_decode_s
    spec, hw = load_model(model), load_hardware("a10")
    f = lambda c: predict(spec, hw, Workload(phase="decode", batch=3, context_len=c, **extra)).time_s
    lo, n = 4000, 700                                      # mistral's 4096-token window lies inside
    brute = sum(f(lo + s) for s in range(n))
    assert sum_decode_s(f, lo, n, exact_below=16) == pytest.approx(brute, rel=1e-9)


# ---- item 12 (theory side): throughput beside time


def test_theory_prints_tokens_per_s(capsys):
    rc, out, _ = theory(BASE + ["--prompt-len", "128", "--generated", "16", "--format", "json"], capsys)
    o = json.loads(out)
    assert o["tokens_per_s"] == pytest.approx(o["batch"] / o["time_s"])
    r = o["request"]
    assert r["decode_tokens_per_s"] == pytest.approx(1 / r["time_per_output_token_s"])
    rc, out, _ = theory(BASE + ["--prompt-len", "128", "--batch", "4", "--generated", "16"], capsys)
    assert "tokens/s" in out


# ---- item 13: CLI help, --context-len, make targets


def test_context_len_for_decode(capsys):
    rc, out, _ = theory(BASE + ["--context-len", "100", "--format", "json"], capsys)
    assert rc == 0 and json.loads(out)["context_len"] == 100


def all_parsers():
    from analysis.cli import build_parser as a
    from bench.cli import build_parser as b
    from bench.comms import build_parser as c
    from theory.cli import build_parser as t
    for top in (t(), b(), a(), c()):
        yield top
        for act in top._actions:
            if getattr(act, "choices", None) and isinstance(act.choices, dict):
                yield from act.choices.values()


def test_every_option_has_help_a_default_and_examples():
    import argparse
    for p in all_parsers():
        text = p.format_help()
        for act in p._actions:
            if isinstance(act, argparse._SubParsersAction) or act.help == argparse.SUPPRESS:
                continue
            assert act.help, f"{p.prog} {act.option_strings or act.dest} has no help"
            if act.option_strings and act.default not in (None, False, argparse.SUPPRESS) and act.nargs != 0:
                shown = p._get_formatter()._get_help_string(act)
                assert "default" in shown, (p.prog, act.dest)
        assert "example" in text.lower(), f"{p.prog} --help shows no example"
    assert "required" in next(all_parsers()).format_help()


def test_bench_help_does_not_import_torch():
    code = ("import sys\nfrom bench.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=subprocess_env(), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "run" in r.stdout


def make(*args):
    venv = ROOT / ".venv"
    return subprocess.run(["make", "-C", str(ROOT), "--no-print-directory", f"VENV={venv}", f"PY={sys.executable}",
                           *args], capture_output=True, text=True, env=subprocess_env())


@pytest.mark.skipif(not (ROOT / ".venv" / ".installed").exists(), reason="needs make install")
def test_make_predict_json_help_and_compare_usage():
    r = make("predict", 'ARGS=--model llama-2-7b --hardware a10 --prompt-len 64 --format json')
    assert r.returncode == 0 and json.loads(r.stdout)["model"] == "llama-2-7b"
    r = make("help")
    cols = {re.match(r"\s*make \S+\s+", line).end() for line in r.stdout.splitlines() if line.strip()}
    assert len(cols) == 1, r.stdout
    r = make("compare")
    assert r.returncode != 0 and "RUNS=" in r.stdout + r.stderr


# ---- item 14: README examples work as written; a CPU ceilings file picks its own dtype


def test_readme_predict_examples_run(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    text = (ROOT / "README.md").read_text()
    examples = re.findall(r'^make predict ARGS="([^"]*)"', text, re.M)
    assert len(examples) >= 3
    for args in examples:
        rc, out, err = theory(shlex.split(args), capsys)
        assert rc == 0, (args, err)


def test_cpu_ceilings_file_picks_its_own_dtype(tiny_run, capsys):
    rc, out, err = theory(["--model", "tinyllama-1.1b", "--hardware", str(tiny_run / "ceilings-fp32.json"),
                           "--prompt-len", "16", "--format", "json"], capsys)
    assert rc == 0, err
    assert json.loads(out)["dtype"] == "fp32"


# ---- item 16: the declared floors are the versions whose APIs the code uses


def test_pyproject_floors_match_the_apis_used():
    import tomllib
    from importlib.metadata import version
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    floors = dict(re.match(r"([a-z-]+)>=([\d.]+)", d).groups() for d in deps)
    assert int(floors["transformers"].split(".")[0]) >= 5          # rope_parameters, from_config(dtype=...)
    major_minor = lambda v: tuple(int(x) for x in re.findall(r"\d+", v)[:2])
    assert major_minor(floors["torch"]) >= (2, 5)                  # torch.OutOfMemoryError
    for name, floor in floors.items():
        assert major_minor(version(name)) >= major_minor(floor), name
    import torch
    import transformers
    from torch.utils.flop_counter import FlopCounterMode  # noqa: F401
    assert issubclass(torch.OutOfMemoryError, RuntimeError)
    cfg = transformers.LlamaConfig(rope_parameters={"rope_type": "default", "rope_theta": 10000.0})
    assert cfg.rope_parameters["rope_theta"] == 10000.0
