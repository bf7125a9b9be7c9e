"""analysis picks and labels runs as they are: compare names every run b, explains its two tests; repeatability
with no arguments takes the latest pair of one sweep; a one-point run has no held-out fit; "(N points)" is the run's."""
import json
import shutil

from analysis.cli import main as analysis_main
from analysis.repeatability import latest_same_sweep_pair
from theory.cliutil import run_main


def twin(run_dir, tmp_path, name, **meta):
    dst = tmp_path / name
    shutil.copytree(run_dir, dst)
    m = json.loads((dst / "run.json").read_text())
    (dst / "run.json").write_text(json.dumps({**m, "run_id": name, **meta}))
    return dst


def test_compare_of_three_runs_names_each_run_b_and_explains_overlap_against_the_ratio(run_copy, tmp_path, capsys):
    b = twin(run_copy, tmp_path, "20990101T000000Z-b")
    c = twin(run_copy, tmp_path, "20990101T000001Z-c")
    rc = run_main(analysis_main, ["compare", str(run_copy), str(b), str(c), "--out", str(tmp_path / "cmp")],
                  errors=(ValueError,))
    assert rc == 0, capsys.readouterr().err
    text = (tmp_path / "cmp" / "report.md").read_text()
    assert "b = `20990101T000000Z-b`" in text and "b = `20990101T000001Z-c`" in text
    assert "| differ |" in text and "Two intervals can overlap while the ratio's interval excludes 1" in text


def test_repeatability_default_is_the_latest_pair_of_one_sweep(run_copy, tmp_path):
    root = tmp_path / "results"
    root.mkdir()
    sha = json.loads((run_copy / "run.json").read_text()).get("sweep_sha1")
    older = twin(run_copy, root, "20990101T000000Z-x", utc_time="2099-01-01T00:00:00Z", sweep_sha1=sha)
    newer = twin(run_copy, root, "20990101T000100Z-x", utc_time="2099-01-01T00:01:00Z", sweep_sha1=sha)
    twin(run_copy, root, "20990101T000200Z-other", utc_time="2099-01-01T00:02:00Z", sweep_sha1="another-sweep")
    assert latest_same_sweep_pair(root) == [older, newer]


def test_a_one_point_run_has_no_held_out_fit_and_counts_its_own_points(run_copy, capsys):
    from bench.store.files import read_csv
    from bench.store.files import csv_text
    from bench.store.points import MEASUREMENT_COLUMNS
    rows = read_csv(run_copy / "measurements.csv")
    keep = next(r["point_id"] for r in rows if r["status"] == "ok")
    (run_copy / "measurements.csv").write_text(csv_text([r for r in rows if r["point_id"] == keep],
                                                        MEASUREMENT_COLUMNS))
    rc = run_main(analysis_main, ["report", str(run_copy)], errors=(ValueError,))
    assert rc == 0, capsys.readouterr().err
    summary = json.loads((run_copy / "summary.json").read_text())
    for phase in ("prefill", "decode"):
        fit = summary[phase].get("tau_fit", summary[phase])
        assert fit["median_abs_error"] is None and fit["points"] == 0
        assert summary[phase]["calibrated"]["median_abs_error"] is None
        assert summary[phase]["points_in_run"] == 1
    text = (run_copy / "report.md").read_text()
    assert "(1 point in the run; scored: composed 1, roofline 1, held-out fits 0)" in text
