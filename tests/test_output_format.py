"""analysis/render/fmt.py: every file a report writes is free of negative zero, including the text inside JSON."""
import json
import re
import subprocess
import sys

from analysis.render.fmt import json_text, no_negative_zero
from tests.conftest import ROOT, subprocess_env


def test_a_message_in_json_carries_no_negative_zero():
    # a depth slope of -2e-7 ms per layer, formatted %.3f inside a flag's message (a tiny run, 2026-12-04)
    text = json_text({"flags": [{"message": "-0.000 ms per layer plus 0.674 ms fixed", "slope": -0.0}]})
    assert json.loads(text) == {"flags": [{"message": "0.000 ms per layer plus 0.674 ms fixed", "slope": 0.0}]}


def test_a_real_negative_number_keeps_its_sign():
    assert no_negative_zero("-0.001 ms, -0.00%, -10 ms, x-0") == "-0.001 ms, 0.00%, -10 ms, x-0"


def test_the_versus_table_of_a_committed_set_carries_no_negative_zero():
    d = ROOT / "results" / "never-built-interleaved-20261202" / "framework-rounds-4"    # an interpolation of -0.0%
    out = subprocess.run([sys.executable, "scripts/versus_table.py", str(d)], capture_output=True, text=True,
                         cwd=ROOT, env=subprocess_env(), check=True).stdout
    assert "| framework-rounds-4 | unseen-d1280-L12 | 1 | prefill | +3.4% | +3.5% | 0.0% |" in out
    assert not re.search(r"(?<![\w.])-0(\.0+)?(?![\d.])", out)


def _table(set_name: str) -> str:
    d = ROOT / "results" / "never-built-interleaved-20261202" / set_name
    return subprocess.run([sys.executable, "scripts/versus_table.py", str(d)], capture_output=True, text=True,
                          cwd=ROOT, env=subprocess_env(), check=True).stdout


def test_the_versus_table_reads_tpot_both_ways_only_for_tries_that_kept_every_pass():
    both = _table("framework-rounds-6")          # runs_s kept: each step's median and the median trajectory
    assert "| set | target | try | timed trajectories | TPOT, each step's median, ms |" in both
    assert "| framework-rounds-6 | tinyllama-1.1b | 3 | 6 | 204.2 | -2.1% | 210.6 | +0.9% |" in both
    assert "each step's median" not in _table("framework-rounds-5")      # no per-step times kept then
