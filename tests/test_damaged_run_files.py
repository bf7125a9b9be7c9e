"""A damaged run file is one line naming the file and the row, and a non-zero exit: NaN, infinite, zero and
negative times, a truncated measurements.csv, an empty kernels.csv (issue 26, item 11)."""
import pytest

from analysis.cli import main as analysis_main
from theory.cliutil import run_main


def report(run_dir, capsys):
    rc = run_main(analysis_main, ["report", str(run_dir)], errors=(ValueError,))
    return rc, capsys.readouterr().err


def set_time(path, line_no: int, value: str) -> None:
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    cells = lines[line_no - 1].split(",")
    cells[header.index("time_s")] = value
    lines[line_no - 1] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")


def assert_one_line(rc, err, *needles):
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for n in needles:
        assert n in err, err


@pytest.mark.parametrize("value", ["nan", "inf", "0", "-0.001"])
@pytest.mark.parametrize("name", ["measurements.csv", "samples.csv"])
def test_a_time_that_is_not_positive_and_finite_names_file_and_line(run_copy, capsys, name, value):
    set_time(run_copy / name, 3, value)
    rc, err = report(run_copy, capsys)
    assert_one_line(rc, err, name, "line 3", "time_s")


def test_a_truncated_measurements_file_names_the_cut_line(run_copy, capsys):
    path = run_copy / "measurements.csv"
    text = path.read_text()
    n = len(text.splitlines())
    path.write_text(text[: len(text) - len(text.splitlines()[-1]) // 2 - 1])       # the last row cut halfway
    rc, err = report(run_copy, capsys)
    assert_one_line(rc, err, "measurements.csv", f"line {n}", "truncated")


@pytest.mark.parametrize("name", ["kernels.csv", "compose.csv", "framework.csv"])
def test_an_empty_side_table_names_its_file(run_copy, capsys, name):
    assert (run_copy / name).exists()
    (run_copy / name).write_text("")
    rc, err = report(run_copy, capsys)
    assert_one_line(rc, err, name)
