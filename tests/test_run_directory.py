"""The run directory: never shared (one process, a lock), mixed, half trusted or left unnamed; writes land whole
(atomic, SIGTERM-safe); a failing point is a row; resume trusts only whole points and the recorded sweep."""
import json
import os
import signal

import pytest

from bench.store import files as records
from bench.point import measure as point_measure
from bench.point.job import PointJob
from bench.run import ceilings as run_ceilings, create as run_create
from bench.sweep import load_run_sweep
from bench.cli import main as bench_main
from bench.store.points import MEASUREMENT_COLUMNS, point_done, point_files
from bench.store.files import atomic_write, read_csv
from bench.sweep import Point, load_sweep, parse_sweep
from conftest import TINY_SWEEP
from theory.cliutil import run_main
from theory.errors import TheoryError


def bench(argv, capsys):
    rc = run_main(bench_main, argv, errors=(ValueError,))
    return rc, capsys.readouterr().err


def test_second_process_on_a_run_dir_is_refused_with_the_holders_pid(run_copy, capsys):
    from bench.store.lock import run_lock
    with run_lock(run_copy):
        rc, err = bench(["resume", str(run_copy), "--no-report"], capsys)
    assert rc == 2 and str(os.getpid()) in err and len(err.strip().splitlines()) == 1
    rc, err = bench(["resume", str(run_copy), "--no-report"], capsys)     # released: resume goes on
    assert rc == 0


def test_temp_files_have_unique_names(tmp_path):
    (tmp_path / ".f.json.tmp").mkdir()            # the old fixed temp name, taken by someone else
    atomic_write(tmp_path / "f.json", "x")
    assert (tmp_path / "f.json").read_text() == "x"


def test_failed_write_leaves_no_temp_file(tmp_path, monkeypatch):
    def full(src, dst):
        raise OSError(28, "No space left on device", str(dst))
    monkeypatch.setattr(records.os, "replace", full)
    with pytest.raises(OSError):
        atomic_write(tmp_path / "f.json", "x")
    assert list(tmp_path.iterdir()) == []


def test_any_exception_in_a_point_is_an_error_row(monkeypatch):
    from bench.devices.cpu import CpuDevice
    def boom(*a, **k):
        raise RuntimeError("head_dim must be even\nsecond line")
    monkeypatch.setattr(point_measure, "build_model", boom)
    sweep = parse_sweep(TINY_SWEEP, json.dumps(TINY_SWEEP), "tiny")
    rows, samples = point_measure.measure_point(PointJob(sweep.points[0], "pid", CpuDevice(threads=1), sweep))
    assert [r["status"] for r in rows] == ["error"] and samples == []
    assert "RuntimeError: head_dim must be even" in rows[0]["message"] and "\n" not in rows[0]["message"]


def test_odd_head_dim_is_refused_up_front():
    bad = {**TINY_SWEEP, "grids": [{"axes": {"hidden_size": [45]}, "head_dim": 15, "kv_group": 1}]}
    with pytest.raises(TheoryError, match="even"):
        parse_sweep(bad, json.dumps(bad), "odd")


def test_resume_compares_the_recorded_sweep_sha1(run_copy):
    meta = json.loads((run_copy / "run.json").read_text())
    meta["sweep_path"] = str(run_copy / "gone.json")          # the original file is gone
    (run_copy / "run.json").write_text(json.dumps(meta))
    text = (run_copy / "sweep.json").read_text().replace('"repeats": 3', '"repeats": 4')
    (run_copy / "sweep.json").write_text(text)
    with pytest.raises(TheoryError, match="sha1"):
        load_run_sweep(run_copy)


def test_run_json_and_directory_come_before_ceilings_and_resume_measures_them(tiny_run, tmp_path, monkeypatch):
    import io
    from bench.devices.cpu import CpuDevice
    sweep, path = load_sweep(str(tiny_run / "sweep.json"))
    def interrupted(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(run_ceilings, "measure_ceilings", interrupted)
    log = io.StringIO()
    with pytest.raises(KeyboardInterrupt):
        run_create.start_run(sweep, path, CpuDevice(threads=1), tmp_path, log=log)
    (run_dir,) = list(tmp_path.iterdir())
    assert str(run_dir) in log.getvalue()
    assert json.loads((run_dir / "run.json").read_text())["ceilings"] == {}
    real = json.loads((tiny_run / "run.json").read_text())
    from theory.hardware import hardware_from_json
    monkeypatch.setattr(run_ceilings, "measure_ceilings", lambda device, dt, host: (
        hardware_from_json(real["ceilings"][dt], "x"), real["ceilings_detail"][dt]))
    run_ceilings.ensure_ceilings(run_dir, sweep, CpuDevice(threads=1), log=log)
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["ceilings"] == real["ceilings"] and (run_dir / "ceilings-fp32.json").exists()


def test_truncated_point_file_is_not_a_finished_point(run_copy):
    pid = read_csv(run_copy / "measurements.csv")[0]["point_id"]
    f = point_files(run_copy, pid)[0]
    assert point_done(run_copy, pid)
    lines = f.read_text().splitlines(keepends=True)
    f.write_text("".join(lines[:3]))                              # header, prefill and one decode row of four
    assert not point_done(run_copy, pid)
    f.write_text("".join(lines)[:-20])                            # cut inside the last row
    assert not point_done(run_copy, pid)
    f.write_text(",".join(MEASUREMENT_COLUMNS) + "\n")            # header only
    assert not point_done(run_copy, pid)


def test_new_run_dir_is_atomic_and_names_cannot_escape(tmp_path, monkeypatch):
    monkeypatch.setattr(run_create.time, "strftime", lambda *a: "20990101T000000Z")
    monkeypatch.setattr(run_create.Path, "exists", lambda self: False)    # another process wins every check
    a = run_create.new_run_dir(tmp_path, "cpu", "s")
    b = run_create.new_run_dir(tmp_path, "cpu", "s")
    assert a != b and a.is_dir() and b.is_dir()
    c = run_create.new_run_dir(tmp_path, "cpu", "../../evil/x")
    assert c.parent == tmp_path


def test_filesystem_errors_are_one_line_with_the_path(tmp_path, capsys, tiny_sweep_file):
    rc, err = bench(["run", "--sweep", str(tmp_path), "--device", "cpu"], capsys)
    assert rc == 2 and str(tmp_path) in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    blocker = tmp_path / "file"
    blocker.write_text("")
    rc, err = bench(["run", "--sweep", str(tiny_sweep_file), "--device", "cpu", "--out", str(blocker)], capsys)
    assert rc == 2 and str(blocker) in err.splitlines()[-1] and "Traceback" not in err


def test_sigterm_finishes_the_write_and_exits_143(run_copy, capsys, monkeypatch):
    from bench.store import signals
    with signals.terminate_as_exception():
        with pytest.raises(signals.Terminated):
            with signals.critical():
                os.kill(os.getpid(), signal.SIGTERM)
                done = True                                       # reached: the signal waited for the write
    assert done and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    monkeypatch.setattr("bench.run.execute.execute", lambda *a, **k: os.kill(os.getpid(), signal.SIGTERM))
    meta = json.loads((run_copy / "run.json").read_text())
    del meta["repeat_summary"]                                    # the end of the run not recorded yet
    (run_copy / "run.json").write_text(json.dumps(meta))
    rc, err = bench(["resume", str(run_copy), "--no-report"], capsys)
    assert rc == 143 and f"python -m bench resume {run_copy}" in err


def test_isolation_point_and_ok_row_counts_survive(tiny_run):
    """Guard for point_done: every finished point of the shared run still counts as finished."""
    sweep, _ = load_sweep(str(tiny_run / "sweep.json"))
    assert all(point_done(tiny_run, p.point_id("cpu")) for p in sweep.points)
    assert Point().label()
