"""What bench's command lines say before anything runs: help that is quick (no torch), whole and complete; bad
combinations refused in one line naming what is wrong; a finished run's resume that says so."""
import json
import subprocess
import sys

import pytest

from conftest import ROOT, subprocess_env
from theory.cliutil import run_main

HELP_WITHOUT_TORCH = """
import sys
from {module} import main
try:
    main({argv})
except SystemExit:
    pass
print("TORCH" if "torch" in sys.modules else "NO TORCH")
"""


@pytest.mark.parametrize("module,argv", [("bench.cli", ["kernels", "--help"]),
                                         ("bench.kernels.versus", ["--help"])])
def test_help_imports_no_torch_and_keeps_whole_sentences(module, argv):
    r = subprocess.run([sys.executable, "-c", HELP_WITHOUT_TORCH.format(module=module, argv=argv)],
                       capture_output=True, text=True, cwd=ROOT, env={**subprocess_env(), "COLUMNS": "400"})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "NO TORCH"
    description = r.stdout.split("\n\n")[1].strip()            # usage, blank line, description
    assert description.endswith("."), description
    if module == "bench.cli":                                  # the first sentence was cut after "and write a"
        assert "and write a calibration JSON that `python -m theory --hardware <calibration.json>`" in description


def test_bench_run_help_lists_every_shipped_sweep():
    from bench.cli import build_parser
    from bench.sweep import SWEEP_DIR
    run = build_parser()._subparsers._group_actions[0].choices["run"]
    sweep_help = next(a.help for a in run._actions if a.dest == "sweep")
    names = sorted(p.stem for p in SWEEP_DIR.glob("*.json"))
    assert len(names) >= 7 and all(n in sweep_help for n in names) and "default" in sweep_help


def test_gpus_on_a_cpu_box_says_there_is_no_cuda(capsys):
    from bench.cli import main
    assert run_main(main, ["run", "--device", "cpu", "--gpus", "0"], errors=(ValueError,)) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "no CUDA device here" in err and "--isolate" not in err


@pytest.mark.parametrize("args,code", [
    (["--hardware", "a100-sxm-80gb", "--context-len", "64", "--max-cache-len", "128"], 2),
    (["--hardware", "a100-sxm-80gb", "--context-len", "64", "--max-cache-len", "128", "--kv-update", "copy"], 2),
    (["--hardware", "a100-sxm-80gb", "--context-len", "64", "--max-cache-len", "128", "--kv-update", "static"], 0),
])
def test_max_cache_len_without_a_static_cache_is_refused(capsys, args, code):
    from theory.cli import main
    assert run_main(main, ["--model", "tinyllama-1.1b", *args]) == code
    err = capsys.readouterr().err
    if code:
        assert len(err.strip().splitlines()) == 1 and "--max-cache-len sizes a static cache" in err


def test_max_cache_len_on_a_dynamic_cache_calibration_is_refused(tmp_path, capsys):
    from test_calibrated_theory import TINY
    from test_calibration_interp import synthetic
    from theory.cli import main
    cal = {**synthetic(), "threads": 1, "device": "cpu", "memory_capacity_bytes": 8 * 10**9}
    assert cal["cache"] == "dynamic"
    (tmp_path / "cal.json").write_text(json.dumps(cal))
    (tmp_path / "m.json").write_text(json.dumps(TINY))
    assert run_main(main, ["--model", str(tmp_path / "m.json"), "--hardware", str(tmp_path / "cal.json"),
                           "--prompt-len", "8", "--max-cache-len", "64"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "timed a dynamic one" in err


def test_a_learned_position_table_too_short_is_refused_when_the_sweep_loads(tmp_path, capsys):
    from bench.cli import main
    cfg = {**json.loads((ROOT / "tests/data/configs/gpt2.json").read_text()), "n_positions": 8}
    (tmp_path / "g.json").write_text(json.dumps(cfg))
    sweep = tmp_path / "s.json"
    sweep.write_text(json.dumps({"name": "s", "defaults": {"model": str(tmp_path / "g.json"), "generated": 8},
                                 "grids": [{"axes": {"prompt_len": [1, 12]}}]}))     # 1+8-1 fits; 12+8-1 = 19 not
    assert run_main(main, ["run", "--sweep", str(sweep), "--device", "cpu", "--out", str(tmp_path / "out")],
                    errors=(ValueError,)) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "learned position table of 8 rows" in err and "T=12" in err
    assert not (tmp_path / "out").exists()                     # refused before a run directory was made


def test_resume_of_a_finished_run_says_so_and_measures_nothing(run_copy, capsys, monkeypatch):
    from bench.cli import main
    monkeypatch.setattr("bench.run.execute.execute", lambda *a, **k: pytest.fail("a finished run was measured"))
    before = (run_copy / "run.json").read_bytes()
    assert run_main(main, ["resume", str(run_copy)], errors=(ValueError,)) == 0
    err = capsys.readouterr().err
    assert "is finished" in err and f"python -m analysis report {run_copy}" in err and "ceilings" not in err
    assert (run_copy / "run.json").read_bytes() == before
