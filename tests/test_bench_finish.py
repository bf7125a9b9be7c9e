"""The end of a `bench run`: its report, or one line saying why there is none (never silence)."""
import builtins

from bench import cli


def test_a_report_that_cannot_be_imported_is_said_in_one_line(tmp_path, monkeypatch, capsys):
    real = builtins.__import__

    def refuse(name, *args, **kwargs):
        if name == "analysis.report":
            raise ImportError("No module named 'pandas'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", refuse)
    cli.finish(tmp_path, no_report=False)
    out = capsys.readouterr()
    assert out.out.strip() == str(tmp_path)
    (line,) = out.err.strip().splitlines()
    assert line.startswith("report not written (No module named 'pandas')") and str(tmp_path) in line


def test_no_report_asked_says_nothing_but_the_run_directory(tmp_path, capsys):
    cli.finish(tmp_path, no_report=True)
    out = capsys.readouterr()
    assert out.out.strip() == str(tmp_path) and out.err == ""
