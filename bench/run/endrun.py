"""The end of a run: noisy points measured once more (the end of a run is often quieter; the better-measured
set is kept, both are recorded). The ceilings measured again (drift): bench/run/ceilings.py end_ceilings."""
import json
import time
from pathlib import Path

from bench.store.files import atomic_write, csv_text, read_csv, write_json
from bench.store.meta import read_meta, update_meta
from bench.store.points import MEASUREMENT_COLUMNS, SAMPLE_COLUMNS, point_files
from bench.store.repeats import repeat_record_path

# Columns only the profiled trajectories fill (bench/profiling/cpumem.py cpu_memory_fields: on CPU the profiler's
# memory events stand in for an allocator). The re-measure runs unprofiled, so a kept second set takes them from the
# first set's row of the same pass: the same model and trajectory, and the memory a pass allocates does not depend
# on how quietly it was timed.
PROFILED_COLUMNS = ("mem_allocated_peak_total_bytes", "mem_allocated_step_bytes", "mem_source")


def with_profiled_columns(second: list[dict], first: list[dict]) -> list[dict]:
    """The second set's rows, their empty profiler-only columns filled from the first set's row of the same pass."""
    by_pass = {(r.get("phase"), str(r.get("step"))): r for r in first}
    out = []
    for r in second:
        f = by_pass.get((r.get("phase"), str(r.get("step"))), {})
        out.append({**r, **{c: f[c] for c in PROFILED_COLUMNS
                            if r.get(c) in (None, "") and f.get(c) not in (None, "")}})
    return out


def mean_rel_width(rows: list[dict]) -> float:
    """Mean over a point's ok rows of (interval width / median): smaller is better measured."""
    ws = [(float(r["time_ci_high_s"]) - float(r["time_ci_low_s"])) / float(r["time_s"])
          for r in rows if r.get("status") == "ok" and r.get("time_ci_high_s") not in (None, "")]
    return sum(ws) / len(ws) if ws else float("inf")


def missed_points(run_dir: Path, point_ids: list[str]) -> list[str]:
    out = []
    for pid in point_ids:
        path = repeat_record_path(run_dir, pid)
        if path.exists() and not json.loads(path.read_text())["target_met"]:
            out.append(pid)
    return out


def remeasure_noisy(run_dir: Path, points: dict, budget_s: float, launcher, log=None) -> list[dict]:
    """points: point_id → Point. launcher.measure(point, pid) → (rows, samples) of a fresh measurement (no
    profile; bench/launch/inline.py InlineLauncher). Re-measures missed points in sweep order while the budget
    lasts; keeps the better-measured set. Paired kernels follow the measurement they were timed with:
    launcher.replacing(pid) before a point's files are replaced by the second set (its kernel files go),
    launcher.kept(pid, rows, second) once the kept set is in place."""
    meta = read_meta(run_dir)
    if meta.get("remeasured") is not None:
        return meta["remeasured"]                  # done before this resume
    done, t0 = [], time.perf_counter()
    for pid in missed_points(run_dir, list(points)):
        cost = sum(v for k, v in json.loads(repeat_record_path(run_dir, pid).read_text())["wall_s"].items() if k != "profile_s")
        if time.perf_counter() - t0 + cost > budget_s:
            continue                               # would overrun the end budget: a cheaper point may still fit
        m_path, s_path = point_files(run_dir, pid)
        first_rows, first_samples = read_csv(m_path), read_csv(s_path)
        rows, samples = launcher.measure(points[pid], pid)
        rows = with_profiled_columns(rows, first_rows)
        w1, w2 = mean_rel_width(first_rows), mean_rel_width(rows)
        keep_second = w2 < w1
        kept, other = ((rows, samples), (first_rows, first_samples)) if keep_second else \
            ((first_rows, first_samples), (rows, samples))
        other_m, other_s = m_path.with_suffix(".other.csv"), s_path.with_name(f"{pid}.other.samples.csv")
        atomic_write(other_s, csv_text(other[1], SAMPLE_COLUMNS))
        atomic_write(other_m, csv_text(other[0], MEASUREMENT_COLUMNS))
        if keep_second:
            launcher.replacing(pid)
            atomic_write(s_path, csv_text(kept[1], SAMPLE_COLUMNS))
            atomic_write(m_path, csv_text(kept[0], MEASUREMENT_COLUMNS))
        launcher.kept(pid, rows, keep_second)
        record = json.loads(repeat_record_path(run_dir, pid).read_text())
        record.update({"remeasured": True, "kept": "second" if keep_second else "first",
                       "target_met": all(str(r.get("time_ci_met")) == "1" for r in kept[0] if r.get("status") == "ok")})
        write_json(repeat_record_path(run_dir, pid), record)
        done.append({"point_id": pid, "first_mean_rel_width": w1, "second_mean_rel_width": w2,
                     "kept": "second" if keep_second else "first", "other_files": [other_m.name, other_s.name]})
        if log:
            name = points[pid].label() if points[pid] is not None else pid      # by shape, as the progress lines
            print(f"re-measured {name} ({pid}): interval width {w1:.1%} -> {w2:.1%}, kept the {done[-1]['kept']}",
                  file=log, flush=True)
    update_meta(run_dir, remeasured=done, remeasure_wall_s=round(time.perf_counter() - t0, 3))
    return done
