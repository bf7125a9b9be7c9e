"""scripts/loo_table.py: the results/README leave-one-out table, read from summary.json alone."""
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import loo_table  # noqa: E402


def score(median: float, p90: float, points: int = 24, **extra) -> dict:
    return {"median_abs_error": median, "p90_abs_error": p90, "points": points, **extra}


def write_run(tmp_path: Path, name: str, loo: dict | None) -> Path:
    run = tmp_path / name
    run.mkdir()
    (run / "summary.json").write_text(json.dumps({"run_id": name, **({"loo": loo} if loo is not None else {})}))
    return run


def loo_of(measured_decode: tuple, drift_decode: tuple, prefill: tuple = (0.03, 0.09), flagged: int = 0) -> dict:
    drift = {"decode": score(*drift_decode), "prefill": score(*prefill)}
    if flagged:
        drift["decode"].update(partly_resident_points=flagged,
                               without_partly_resident=score(0.02, 0.05, 24 - flagged))
    return {"measured": {"phases": {"decode": score(*measured_decode), "prefill": score(*prefill)}},
            "drift_scaled": {"phases": drift}}


def test_a_run_within_the_bar_drift_scaled_only_is_named_so(tmp_path):
    run = write_run(tmp_path, "r1", loo_of((0.12, 0.30), (0.06, 0.15)))
    line = loo_table.row(run)
    assert "12.0% / 30.0%; 3.0% / 9.0%" in line and "6.0% / 15.0%" in line
    assert line.endswith("| drift-scaled |")


def test_a_p90_above_twenty_percent_misses_the_bar(tmp_path):
    run = write_run(tmp_path, "r2", loo_of((0.05, 0.21), (0.05, 0.205)))
    assert loo_table.row(run).endswith("| none |")


def test_partly_resident_points_give_the_figure_without_them(tmp_path):
    run = write_run(tmp_path, "r3", loo_of((0.05, 0.3), (0.05, 0.3), flagged=5))
    assert "| 5 | 2.0% / 5.0% |" in loo_table.row(run)


def test_a_run_without_loo_gets_a_row_saying_so(tmp_path):
    run = write_run(tmp_path, "r4", None)
    assert "no leave-one-out" in loo_table.row(run)


def test_a_missing_summary_is_one_line_and_exit_two(tmp_path, capsys):
    assert loo_table.main([str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
