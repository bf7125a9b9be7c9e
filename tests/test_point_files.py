"""A point's measurements file: which statuses make it finished, so a resume neither repeats nor drops it."""
from bench.store.files import csv_text
from bench.store.points import MEASUREMENT_COLUMNS, point_done, point_files


def _write(run_dir, status):
    run_dir.joinpath("points").mkdir(exist_ok=True)
    row = dict.fromkeys(MEASUREMENT_COLUMNS, "")
    row.update(point_id="p1", phase="prefill", step="0", generated="4", status=status)
    point_files(run_dir, "p1")[0].write_text(csv_text([row], MEASUREMENT_COLUMNS))


def test_a_timed_out_point_is_finished_not_measured_again(tmp_path):
    _write(tmp_path, "timeout")                  # the child ran past its limit: a failure row, like error
    assert point_done(tmp_path, "p1")


def test_an_unknown_status_is_measured_again(tmp_path):
    _write(tmp_path, "half-written")
    assert not point_done(tmp_path, "p1")
