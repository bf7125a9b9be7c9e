"""End of a run: noisy points measured again, the better-measured set kept, both recorded, budget respected."""
import json
import shutil
from types import SimpleNamespace

import pytest

from bench.store.points import point_files
from bench.store.files import read_csv
from bench.run.endrun import missed_points, remeasure_noisy


def fresh_copy(tiny_run, tmp_path):
    """The tiny run copied, as if its end-of-run re-measure had not happened yet."""
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    meta = json.loads((run / "run.json").read_text())
    meta.pop("remeasured", None)
    (run / "run.json").write_text(json.dumps(meta))
    return run


def test_better_measured_set_is_kept_and_both_recorded(tiny_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    ids = [r["point_id"] for r in read_csv(run / "measurements.csv") if r["phase"] == "prefill"]
    missed = missed_points(run, ids)
    assert missed                                         # 3 fixed repeats never give a 95% interval
    meta = json.loads((run / "run.json").read_text())
    meta.pop("remeasured", None)
    (run / "run.json").write_text(json.dumps(meta))
    calls = []

    def measure(point, pid):                              # a "quieter" second measurement for the first point only
        calls.append(pid)
        rows = [dict(r) for r in read_csv(point_files(run, pid)[0])]
        narrow = pid == missed[0]
        for r in rows:
            t = float(r["time_s"])
            r["time_ci_low_s"], r["time_ci_high_s"] = (t * 0.99, t * 1.01) if narrow else (t * 0.01, t * 100.0)
            r["time_ci_met"] = int(narrow)
        return rows, read_csv(point_files(run, pid)[1])

    told = []                                             # paired kernels follow the kept set

    def on_kept(pid, rows, second):
        told.append((pid, second, float(read_csv(point_files(run, pid)[0])[0]["time_ci_high_s"])))

    replaced = []                                         # the second set's files land only after this

    def on_replace(pid):
        replaced.append((pid, float(read_csv(point_files(run, pid)[0])[0]["time_ci_high_s"])))

    launcher = SimpleNamespace(measure=measure, kept=on_kept, replacing=on_replace)
    done = remeasure_noisy(run, {pid: None for pid in ids}, 1e9, launcher)
    assert [pid for pid, _ in replaced] == [d["point_id"] for d in done if d["kept"] == "second"]
    assert replaced[0][1] == float(read_csv(point_files(tiny_run, missed[0])[0])[0]["time_ci_high_s"])
    assert [(pid, second) for pid, second, _ in told] == [(d["point_id"], d["kept"] == "second") for d in done]
    assert told[0][2] == float(read_csv(point_files(run, missed[0])[0])[0]["time_ci_high_s"])   # after: the second
    assert calls == missed and [d["kept"] for d in done][:1] == ["second"]
    assert all(d["kept"] == "first" for d in done[1:])
    kept = read_csv(point_files(run, missed[0])[0])
    assert float(kept[0]["time_ci_high_s"]) == float(kept[0]["time_s"]) * 1.01
    assert (run / "points" / f"{missed[0]}.other.csv").exists()          # the first set, kept beside it
    assert json.loads((run / "run.json").read_text())["remeasured"] == done
    assert remeasure_noisy(run, {pid: None for pid in ids}, 1e9, launcher) == done and len(calls) == len(missed)


def test_budget_skips_points_that_would_overrun(tiny_run, tmp_path):
    run = fresh_copy(tiny_run, tmp_path)
    ids = [r["point_id"] for r in read_csv(run / "measurements.csv") if r["phase"] == "prefill"]
    never = SimpleNamespace(measure=lambda p, q: 1 / 0, kept=None, replacing=None)
    assert remeasure_noisy(run, {pid: None for pid in ids}, 0.0, never) == []


def test_remeasured_second_set_keeps_the_profilers_memory_columns(tiny_run, tmp_path):
    run = fresh_copy(tiny_run, tmp_path)
    pid = read_csv(run / "measurements.csv")[0]["point_id"]
    first = read_csv(point_files(run, pid)[0])
    assert first[0]["mem_source"] == "profiler" and first[0]["mem_allocated_step_bytes"] not in ("", None)

    def measure(point, p):                   # an unprofiled, better-measured second set: no profiler columns
        rows = [dict(r, mem_source="", mem_allocated_step_bytes="", mem_allocated_peak_total_bytes="",
                     time_ci_low_s=float(r["time_s"]) * 0.999, time_ci_high_s=float(r["time_s"]) * 1.001,
                     time_ci_met=1) for r in read_csv(point_files(run, p)[0])]
        return rows, read_csv(point_files(run, p)[1])

    launcher = SimpleNamespace(measure=measure, kept=lambda *a: None, replacing=lambda p: None)
    done = remeasure_noisy(run, {pid: None}, 1e9, launcher)
    assert done and done[0]["kept"] == "second"
    kept = read_csv(point_files(run, pid)[0])
    assert float(kept[0]["time_ci_high_s"]) == pytest.approx(float(kept[0]["time_s"]) * 1.001)
    for a, b in zip(kept, first):
        assert (a["mem_source"], a["mem_allocated_step_bytes"]) == (b["mem_source"], b["mem_allocated_step_bytes"])


def test_the_remeasure_line_names_the_point_by_its_shape(tiny_run, tmp_path):
    import io

    from bench.sweep import Point
    run = fresh_copy(tiny_run, tmp_path)
    pid = read_csv(run / "measurements.csv")[0]["point_id"]
    point = Point(hidden_size=64, num_hidden_layers=2, batch=1, prompt_len=8, generated=4)

    def measure(p, q):
        return read_csv(point_files(run, q)[0]), read_csv(point_files(run, q)[1])

    log = io.StringIO()
    launcher = SimpleNamespace(measure=measure, kept=lambda *a: None, replacing=lambda p: None)
    remeasure_noisy(run, {pid: point}, 1e9, launcher, log=log)
    line = log.getvalue()
    assert line.startswith(f"re-measured {point.label()} ({pid}): interval width")
