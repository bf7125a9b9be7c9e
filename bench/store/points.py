"""Measurement rows and their files. A point's rows land whole or not at all (temporary file + rename)."""
import csv
import io
from pathlib import Path

from bench.store.files import atomic_write, csv_text, read_csv
from bench.store.traces import assemble_traces

MEASUREMENT_COLUMNS = [
    "point_id", "phase", "step", "batch", "prompt_len", "context_len", "generated",
    "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim",
    "intermediate_size", "vocab_size", "model", "dtype", "device", "threads", "attention", "cache", "execution",
    "theory_attention", "kv_update", "max_cache_len", "logits", "repeat_kv",
    "time_s", "time_p10_s", "time_p90_s", "repeats", "time_cold_s",
    "kv_cache_bytes", "weight_bytes", "mem_allocated_bytes", "mem_reserved_bytes", "mem_allocated_peak_total_bytes",
    "mem_reserved_peak_total_bytes", "device_used_bytes", "mem_allocated_step_bytes", "mem_source",
    "rss_peak_bytes", "build_s", "n_dispatch", "hidden_syncs", "gpu_sm_clock_mhz", "gpu_power_w",
    "gpu_throttle_reasons", "gpu_sm_clock_min_mhz", "gpu_power_min_w", "gpu_state_samples", "gpu_uuid",
    "box",                          # which box measured it, in a merged or Ray run: its entry in run.json `boxes`
    "tokens_per_s",                 # batch × tokens of the pass / time_s (prompt tokens for prefill, 1 per decode step)
    "status", "message",
    "time_ci_low_s", "time_ci_high_s", "time_ci_met", "repeats_disturbed", "interference", "canary_ratio",
    "compile_s", "graphs_compiled", "recompiles_timed", "cudagraph_skips", "cudagraph_rerecords_timed",
]
# repeat −1 is the cold trajectory; disturbed: taken while the interference canary ran slow (bench/timing/repeats.py)
SAMPLE_COLUMNS = ["point_id", "phase", "step", "repeat", "time_s", "disturbed"]


def point_files(run_dir: Path, point_id: str) -> tuple[Path, Path]:
    d = run_dir / "points"
    return d / f"{point_id}.csv", d / f"{point_id}.samples.csv"


def save_point(run_dir: Path, point_id: str, rows: list[dict], samples: list[dict]) -> None:
    """Samples first, then the measurements file whose presence marks the point done."""
    (run_dir / "points").mkdir(exist_ok=True)
    m, s = point_files(run_dir, point_id)
    atomic_write(s, csv_text(samples, SAMPLE_COLUMNS))
    atomic_write(m, csv_text(rows, MEASUREMENT_COLUMNS))


# Timed in full but flagged (bench/point/rows.py mode_fields): every pass has its row, none is averaged in as ok.
FLAGGED_STATUSES = ("recompiled", "cudagraph_skipped", "cudagraph_rerecorded")
ROW_STATUSES = ("ok", "oom", "skipped_memory", "error", "timeout") + FLAGGED_STATUSES


def point_done(run_dir: Path, point_id: str) -> bool:
    """A point is finished only if its measurements file is whole: a header naming the point columns, rows that
    end in a newline with every field present, known statuses, and for `ok` the prefill plus generated−1 decode
    steps. Anything else (a truncated or foreign file) is measured again."""
    path = point_files(run_dir, point_id)[0]
    try:
        text = path.read_text()
        rows = list(csv.DictReader(io.StringIO(text)))
    except (OSError, UnicodeDecodeError, csv.Error):
        return False
    if not rows or not text.endswith("\n") or not {"point_id", "phase", "step", "generated", "status"} <= set(rows[0]):
        return False
    if any(None in r or None in r.values() or r["point_id"] != point_id or r["status"] not in ROW_STATUSES
           for r in rows):
        return False
    timed = ("ok",) + FLAGGED_STATUSES
    if rows[0]["status"] not in timed:
        return len(rows) == 1
    try:
        return len(rows) == int(rows[0]["generated"]) and all(r["status"] == rows[0]["status"] for r in rows)
    except ValueError:
        return False


def assemble(run_dir: Path, point_ids: list[str]) -> int:
    """Rebuild measurements.csv and samples.csv from the finished points, in sweep order."""
    rows, samples = [], []
    for pid in point_ids:
        m, s = point_files(run_dir, pid)
        if point_done(run_dir, pid):
            rows += read_csv(m)
            if s.exists():
                samples += read_csv(s)
    atomic_write(run_dir / "measurements.csv", csv_text(rows, MEASUREMENT_COLUMNS))
    atomic_write(run_dir / "samples.csv", csv_text(samples, SAMPLE_COLUMNS))
    profiles = [run_dir / "points" / f"{pid}.profile.csv" for pid in point_ids]
    profiles = [f for f in profiles if f.exists() and point_done(run_dir, f.name.split(".")[0])]
    if profiles:
        header, body = None, []
        for f in profiles:
            lines = f.read_text().splitlines(keepends=True)
            header = header or lines[0]
            body += lines[1:]
        atomic_write(run_dir / "profile.csv", header + "".join(body))
    assemble_traces(run_dir, [pid for pid in point_ids if point_done(run_dir, pid)])
    return len(rows)
