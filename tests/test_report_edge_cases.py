"""Reports on broken or empty runs (one line), throughput in every table, and reports that repeat byte for byte."""
import json
import re

import pytest

from analysis.cli import main as analysis_main
from bench.store.files import read_csv
from theory.cliutil import run_main


def analysis(argv, capsys):
    rc = run_main(analysis_main, argv, errors=(ValueError,))
    out = capsys.readouterr()
    return rc, out.out, out.err


def one_line(rc, err, *needles):
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for n in needles:
        assert n in err, err


# ---- item 8


def test_report_on_a_run_with_no_ok_rows(run_copy, capsys):
    rows = [r for r in read_csv(run_copy / "measurements.csv") if r["phase"] == "prefill"]
    from bench.store.points import MEASUREMENT_COLUMNS
    from bench.store.files import csv_text
    for r in rows:
        r.update(status="error", message="RuntimeError: boom", time_s="")
    (run_copy / "measurements.csv").write_text(csv_text(rows, MEASUREMENT_COLUMNS))
    rc, out, err = analysis(["report", str(run_copy)], capsys)
    assert rc == 0, err
    text = (run_copy / "report.md").read_text()
    assert "nothing was measured" in text.lower() and "boom" in text
    rc, out, err = analysis(["compare", str(run_copy), str(run_copy), "--out", str(run_copy / "cmp")], capsys)
    assert rc == 0, err


@pytest.mark.parametrize("damage,needle", [
    (lambda d: (d / "run.json").write_text((d / "run.json").read_text()[:50]), "run.json"),
    (lambda d: (d / "measurements.csv").write_text("\x00\x01garbage\n\"unterminated"), "measurements.csv"),
    (lambda d: (d / "measurements.csv").write_text("a,b\n1,2\n"), "measurements.csv"),
    (lambda d: (d / "run.json").write_text(json.dumps(
        {k: v for k, v in json.loads((d / "run.json").read_text()).items() if k != "ceilings"})), "ceilings"),
    (lambda d: (d / "run.json").write_text("[1, 2]"), "run.json"),
])
def test_broken_run_files_are_one_line(run_copy, capsys, damage, needle):
    damage(run_copy)
    rc, out, err = analysis(["report", str(run_copy)], capsys)
    one_line(rc, err, needle)


def test_resume_without_sweep_path_is_one_line(run_copy):
    from bench.sweep import load_run_sweep
    from theory.errors import TheoryError
    meta = json.loads((run_copy / "run.json").read_text())
    del meta["sweep_path"]
    (run_copy / "run.json").write_text(json.dumps(meta))
    with pytest.raises(TheoryError, match="sweep_path"):
        load_run_sweep(run_copy)


def test_compare_out_is_a_file(run_copy, capsys, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    rc, out, err = analysis(["compare", str(run_copy), str(run_copy), "--out", str(blocker / "x")], capsys)
    one_line(rc, err, str(blocker))


# ---- item 12


def test_throughput_in_measurements_report_and_compare(run_copy, capsys):
    for r in read_csv(run_copy / "measurements.csv"):
        tokens = int(r["batch"]) * (int(r["prompt_len"]) if r["phase"] == "prefill" else 1)
        assert float(r["tokens_per_s"]) == pytest.approx(tokens / float(r["time_s"]), rel=1e-6)
    rc, out, err = analysis(["report", str(run_copy)], capsys)
    text = (run_copy / "report.md").read_text()
    assert "tokens/s" in text and "batch × prompt tokens / prefill time" in text
    rc, out, err = analysis(["compare", str(run_copy), str(run_copy), "--out", str(run_copy / "cmp")], capsys)
    assert "tokens/s" in (run_copy / "cmp" / "report.md").read_text()


# ---- item 15


def test_report_repeats_byte_for_byte_and_reads_well(run_copy, capsys):
    names = ["report.md", "joined.csv", "summary.json"]
    analysis(["report", str(run_copy)], capsys)
    first = {n: (run_copy / n).read_bytes() for n in names}
    figs = {p.name: p.read_bytes() for p in (run_copy / "figures").glob("*.png")}
    analysis(["report", str(run_copy)], capsys)
    for n in names:
        assert (run_copy / n).read_bytes() == first[n], n
    assert figs and {p.name: p.read_bytes() for p in (run_copy / "figures").glob("*.png")} == figs
    text = first["report.md"].decode()
    for n in names:
        body = first[n].decode()
        assert not re.search(r"(?<![\w.])-0(\.0+)?(?![\d.])", body), n       # no negative zero
        assert not re.search(r"\d\.\d{14,}", body), n       # fixed formats: %.10g never writes 14+ decimals
    summary = json.loads(first["summary.json"])
    assert list(summary) == sorted(summary)
    assert "d=64 L=2 b=1 T=8" in text
    head = text.split("## Measured ceilings")[0]       # issue 23: the first screen leads, the fits follow it
    assert "**What ran**" in head and "**Where the time goes**" in head
    for word in ("τ", "k_mem", "k_comp"):
        assert word in head
