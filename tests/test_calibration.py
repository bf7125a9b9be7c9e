"""`python -m bench kernels` writes a calibration; `python -m theory --hardware <calibration.json>` predicts from it
(torch-free: data + interpolation by each op's work, refusing only what it cannot map)."""
import json
import subprocess
import sys

import pytest

from bench.kernels.cli import main as kernels_main
from conftest import ROOT, subprocess_env
from theory.calibration import FORMAT, predict_pass, request
from theory.cli import main as theory_main
from theory.cliutil import run_main
from theory.hfconfig import load_model

TINY_CONFIG = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
               "head_dim": 16, "intermediate_size": 176, "vocab_size": 256, "max_position_embeddings": 512}


@pytest.fixture(scope="module")
def calibration(tmp_path_factory):
    d = tmp_path_factory.mktemp("cal")
    cfg = d / "config.json"
    cfg.write_text(json.dumps(TINY_CONFIG))
    out = d / "cal.json"
    assert kernels_main(["--model", str(cfg), "--batch", "1", "--prompt-len", "8", "--generated", "5", "--out", str(out),
                         "--kernel-cache", str(d / "kc")]) == 0
    return cfg, out


def test_calibration_holds_prefill_and_two_decode_contexts(calibration):
    _, out = calibration
    cal = json.loads(out.read_text())
    assert cal["format"] == FORMAT and cal["threads"] == 1 and cal["dtype"] == "fp32"
    assert [(p["phase"], p["context_len"]) for p in cal["passes"]] == [("prefill", 0), ("decode", 8), ("decode", 11)]
    ops = cal["passes"][1]["ops"]
    assert ops["q_proj"]["count"] == 2 and ops["residual_add"]["count"] == 4 and ops["lm_head"]["count"] == 1
    assert all(o["ci_low_s"] <= o["kernel_s"] <= o["ci_high_s"] for p in cal["passes"] for o in p["ops"].values())


def test_theory_composes_calibrated_steps_exactly_and_interpolates_between(calibration):
    cfg, out = calibration
    cal = json.loads(out.read_text())
    model = load_model(str(cfg))
    a, b = cal["passes"][1], cal["passes"][2]
    total = lambda p: sum(o["count"] * o["kernel_s"] for o in p["ops"].values()) + p["framework_s"]
    at8 = predict_pass(cal, model, "decode", 1, 8, 8)
    assert at8.time_s == pytest.approx(total(a), rel=1e-12) and at8.status == "calibrated"
    assert predict_pass(cal, model, "decode", 1, 8, 11).time_s == pytest.approx(total(b), rel=1e-12)
    mid = predict_pass(cal, model, "decode", 1, 8, 10)
    assert not mid.extrapolated and mid.ops["q_proj"]["status"] == "calibrated"   # its shape moves not with context
    assert mid.ops["kv_update"]["status"] == "interpolated"
    lo, hi = sorted((a["ops"]["kv_update"]["kernel_s"], b["ops"]["kv_update"]["kernel_s"]))
    assert lo <= mid.ops["kv_update"]["kernel_s"] <= hi
    assert predict_pass(cal, model, "decode", 1, 8, 40).extrapolated
    r = request(cal, model, 1, 8, 5)
    assert r["decode_steps"] == 4 and r["time_to_first_token_s"] == pytest.approx(total(cal["passes"][0]))


def test_theory_cli_reads_a_calibration(calibration, capsys):
    cfg, out = calibration
    assert theory_main(["--model", str(cfg), "--hardware", str(out), "--prompt-len", "8", "--generated", "5",
                        "--format", "json"]) == 0
    obj = json.loads(capsys.readouterr().out)
    assert obj["source"] == "kernel calibration" and obj["request"]["time_per_output_token_s"] > 0
    assert {o["name"] for o in obj["ops"]} >= {"q_proj", "attn_core", "kv_update", "lm_head"}


def test_a_decode_step_named_by_its_context_alone_takes_a_later_steps_framework(calibration, capsys):
    cfg, out = calibration
    cal = json.loads(out.read_text())
    first = next(p for p in cal["passes"] if p["phase"] == "decode" and p["context_len"] == p["prompt_len"])
    later = next(p for p in cal["passes"] if p["phase"] == "decode" and p["context_len"] > p["prompt_len"])
    first["framework_s"], later["framework_s"] = 2e-3, 1e-3          # the first step after a prefill costs more
    doctored = out.with_name("cal-steps.json")
    doctored.write_text(json.dumps(cal))
    assert theory_main(["--model", str(cfg), "--hardware", str(doctored), "--phase", "decode", "--context-len",
                        str(first["context_len"]), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["framework_s"] == pytest.approx(1e-3)   # not the first step's 2 ms
    p = predict_pass(cal, load_model(str(cfg)), "decode", 1, first["context_len"], first["context_len"] + 1)
    assert p.framework["step_kind"] == "decode-later" and p.framework_s == pytest.approx(1e-3)
    p0 = predict_pass(cal, load_model(str(cfg)), "decode", 1, first["context_len"], first["context_len"])
    assert p0.framework["step_kind"] == "decode-first" and p0.framework_s == pytest.approx(2e-3)


def test_theory_predicts_workloads_the_calibration_lacks_and_says_so(calibration):
    cfg, out = calibration
    r = subprocess.run([sys.executable, "-m", "theory", "--hardware", str(out), "--model", str(cfg), "--batch", "3",
                        "--prompt-len", "20", "--generated", "4", "--format", "json"], capture_output=True, text=True,
                       cwd=ROOT, env=subprocess_env())
    assert r.returncode == 0, r.stderr
    obj = json.loads(r.stdout)
    assert obj["status"] == "extrapolated" and obj["request"]["extrapolated"]     # batch 3 > the calibrated 1
    note = r.stderr.strip().splitlines()
    assert len(note) == 1 and note[0].startswith("note: extrapolated") and "lm_head" in note[0]


@pytest.mark.parametrize("args,needle", [
    (["--dtype", "bf16", "--prompt-len", "8"], "measured in fp32, not bf16"),
    (["--model", "tests/data/configs/mixtral-8x7b.json", "--prompt-len", "8"], "not Llama-structured"),
    (["--kv-update", "append", "--prompt-len", "8"], "not --kv-update append"),
])
def test_theory_refuses_what_it_cannot_map(calibration, args, needle):
    cfg, out = calibration
    args = args if "--model" in args else ["--model", str(cfg)] + args
    r = subprocess.run([sys.executable, "-m", "theory", "--hardware", str(out), *args], capture_output=True, text=True,
                       cwd=ROOT, env=subprocess_env())
    assert r.returncode == 2 and needle in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_theory_on_a_calibration_never_imports_torch(calibration):
    cfg, out = calibration
    code = ("import sys\nfrom theory.cli import main\n"
            f"main(['--model', {str(cfg)!r}, '--hardware', {str(out)!r}, '--batch', '2', '--prompt-len', '9', "
            "'--generated', '3'])\nassert 'torch' not in sys.modules, 'torch imported'\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=subprocess_env(), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("args", [["--model", "no-such-model", "--prompt-len", "8"],
                                  ["--model", "tinyllama-1.1b", "--prompt-len", "0"]])
def test_bench_kernels_bad_input_is_one_line(args, capsys):
    from bench.cli import main as bench_main
    assert run_main(bench_main, ["kernels", *args], errors=(ValueError,)) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ")


def test_versus_bad_input_is_one_line_and_its_help_has_an_example(capsys):
    from bench.kernels.versus import build_parser, main as versus_main
    assert "example" in build_parser().format_help()
    assert run_main(versus_main, ["--calibration", "x.json", "--model", "tinyllama-1.1b", "--prompt-len", "8",
                                  "--generated", "1"], errors=(ValueError,)) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--generated at least 2" in err


def test_versus_times_the_largest_decode_kernels_again_to_show_box_drift(calibration, monkeypatch):
    import bench.kernels.recheck as versus
    from bench.devices.cpu import CpuDevice
    from bench.kernels.microbench import KernelTime
    cfg, out = calibration
    cal = json.loads(out.read_text())
    ops = cal["passes"][1]["ops"]                          # the first workload's first decode step
    top = sorted(ops, key=lambda op: -ops[op]["count"] * ops[op]["kernel_s"])[:versus.DRIFT_OPS]
    w = cal["workloads"][0]
    shapes = versus.passes(load_model(str(cfg)), w["batch"], w["prompt_len"], w["generated"], "fp32", "sdpa",
                           "dynamic", None)
    op_of = {k: op for op, _, k in versus.pass_kernels(shapes[1])}     # the norms share one kernel (and time)
    timed = []

    def twice(kernel, device, state, llc_bytes):        # the box now runs every kernel at half speed
        timed.append(op_of[kernel])
        t = 2 * ops[op_of[kernel]]["kernel_s"]
        return KernelTime(t, t, t, 7, True, state, 1, 0)

    monkeypatch.setattr(versus, "time_kernel", twice)
    other = load_model("tinyllama-1.1b")                  # predicting another model: the calibration's own shapes
    drift = versus.box_drift(cal, other, CpuDevice(threads=1))
    assert drift["ops"] == top and len(timed) == len(top) and drift["now_over_calibrated"] == pytest.approx(2.0)
    monkeypatch.undo()
    real = versus.box_drift(cal, load_model(str(cfg)), CpuDevice(threads=1))
    assert real["ops"] == top and real["now_over_calibrated"] > 0
