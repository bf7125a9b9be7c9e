"""Measurement rows and their files. A point's rows land whole or not at all (temporary file + rename)."""
import csv
import io
import json
import os
from pathlib import Path

MEASUREMENT_COLUMNS = [
    "point_id", "phase", "step", "batch", "prompt_len", "context_len", "generated",
    "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim",
    "intermediate_size", "vocab_size", "model", "dtype", "device", "threads", "attention", "cache", "execution",
    "theory_attention", "kv_update", "max_cache_len", "logits", "repeat_kv",
    "time_s", "time_p10_s", "time_p90_s", "repeats", "time_cold_s",
    "kv_cache_bytes", "weight_bytes", "mem_allocated_bytes", "mem_reserved_bytes", "mem_allocated_peak_total_bytes",
    "mem_reserved_peak_total_bytes", "device_used_bytes",
    "rss_peak_bytes", "build_s", "n_dispatch", "hidden_syncs", "gpu_sm_clock_mhz", "gpu_power_w",
    "gpu_throttle_reasons", "compile_s", "graphs_compiled", "recompiles_timed", "status", "message",
]
SAMPLE_COLUMNS = ["point_id", "phase", "step", "repeat", "time_s"]      # repeat −1 is the cold trajectory


def atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def csv_text(rows: list[dict], columns: list[str]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, extrasaction="raise", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: "" if r.get(k) is None else r.get(k) for k in columns})
    return buf.getvalue()


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def write_json(path: Path, obj) -> None:
    atomic_write(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def point_files(run_dir: Path, point_id: str) -> tuple[Path, Path]:
    d = run_dir / "points"
    return d / f"{point_id}.csv", d / f"{point_id}.samples.csv"


def save_point(run_dir: Path, point_id: str, rows: list[dict], samples: list[dict]) -> None:
    """Samples first, then the measurements file whose presence marks the point done."""
    (run_dir / "points").mkdir(exist_ok=True)
    m, s = point_files(run_dir, point_id)
    atomic_write(s, csv_text(samples, SAMPLE_COLUMNS))
    atomic_write(m, csv_text(rows, MEASUREMENT_COLUMNS))


def point_done(run_dir: Path, point_id: str) -> bool:
    return point_files(run_dir, point_id)[0].exists()


def assemble(run_dir: Path, point_ids: list[str]) -> int:
    """Rebuild measurements.csv and samples.csv from the finished points, in sweep order."""
    rows, samples = [], []
    for pid in point_ids:
        m, s = point_files(run_dir, pid)
        if m.exists():
            rows += read_csv(m)
            if s.exists():
                samples += read_csv(s)
    atomic_write(run_dir / "measurements.csv", csv_text(rows, MEASUREMENT_COLUMNS))
    atomic_write(run_dir / "samples.csv", csv_text(samples, SAMPLE_COLUMNS))
    profiles = [run_dir / "points" / f"{pid}.profile.csv" for pid in point_ids]
    profiles = [f for f in profiles if f.exists() and point_files(run_dir, f.name.split(".")[0])[0].exists()]
    if profiles:
        header, body = None, []
        for f in profiles:
            lines = f.read_text().splitlines(keepends=True)
            header = header or lines[0]
            body += lines[1:]
        atomic_write(run_dir / "profile.csv", header + "".join(body))
    return len(rows)
