"""`python -m bench kvmem`: help, one-line bad input, and a tiny CPU run's JSON and figure (in-process: fast)."""
import json

import pytest

from bench.cli import main
from theory.cliutil import run_main


def test_help_shows_defaults_and_examples(capsys):
    with pytest.raises(SystemExit) as e:
        main(["kvmem", "--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0 and "examples:" in out and "(default: 64)" in out and "d_model" in out


@pytest.mark.parametrize("model, needle", [("d_model=1000,heads=7", "heads 7 must divide"),
                                           ("width=3", "is not key=value"), ("layers=x", "must be a number")])
def test_bad_model_spec_is_one_line(model, needle, capsys):
    assert run_main(main, ["kvmem", "--model", model, "--device", "cpu"], errors=(ValueError,)) == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1


def test_tiny_cpu_run_prints_steps_per_token_and_a_figure(tmp_path, capsys):
    fig = tmp_path / "kv.png"
    assert main(["kvmem", "--model", "d_model=64,layers=2,heads=4,vocab=256", "--prompt-len", "8", "--generated", "6",
                 "--device", "cpu", "--format", "json", "--figure", str(fig), "--trace", str(tmp_path / "t.csv")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["steps"]) == 6 and out["steps"][0]["phase"] == "prefill"
    assert out["per_token"]["tensor_bytes"] == out["theory_bytes_per_token"] == 2 * 2 * 64 * 4
    assert all(s["reserved_bytes"] >= s["allocated_bytes"] for s in out["steps"])
    assert fig.stat().st_size > 1000 and (tmp_path / "t.csv").read_text().startswith("point_id,phase,step")
