"""Report section: KV memory as a CUDA GPU's caching allocator would reserve it, from each point's allocation trace
(alloc_trace.csv.gz, bench/profiling/alloctrace.py) replayed through theory/allocator.py, beside the cache tensors,
and on CUDA beside the allocator's measured reserved bytes. Causes are named with their bytes per token: the 512 B
rounding of blocks (allocated − requested) and what sits free inside reserved segments (reserved − allocated:
cached blocks of older sizes, the unused rest of 2/20 MiB segments). Writes kv_allocator.csv (every point's steps)."""
import csv
import gzip
import io
from pathlib import Path

from theory.kvrun import staircase, step_states

TRACE_FILE = "alloc_trace.csv.gz"
STEP_COLUMNS = ["point_id", "phase", "step", "tokens", "tensor_bytes", "requested_bytes", "allocated_bytes",
                "reserved_bytes", "measured_reserved_bytes"]


def _slope(x, y):
    n = len(x)
    if n < 2 or min(x) == max(x):
        return None
    mx, my = sum(x) / n, sum(y) / n
    return sum((a - mx) * (b - my) for a, b in zip(x, y)) / sum((a - mx) ** 2 for a in x)


def read_traces(run_dir: Path) -> dict[str, list[dict]]:
    path = Path(run_dir) / TRACE_FILE
    if not path.exists():
        return {}
    out: dict[str, list[dict]] = {}
    with gzip.open(path, "rt", newline="") as f:
        for r in csv.DictReader(f):
            out.setdefault(r["point_id"], []).append(r)
    return out


def kv_allocator_rows(run_dir: Path, measurements) -> tuple[list[dict], list[dict]]:
    """(per-step rows, per-point summaries) for every dynamic-cache eager point with a trace."""
    traces, steps, points = read_traces(run_dir), [], []
    if not traces or measurements is None or len(measurements) == 0:
        return steps, points
    m = measurements[(measurements["status"] == "ok")]
    for pid, trace in traces.items():
        g = m[m["point_id"] == pid]
        if g.empty or g["cache"].iloc[0] != "dynamic":
            continue
        kv = {(r["phase"], int(r["step"])): (int(r["context_len"]) + (int(r["prompt_len"]) if r["phase"] == "prefill" else 1),
                                             r["kv_cache_bytes"]) for _, r in g.iterrows()}
        rows = []
        for s in step_states(trace):
            if (s["phase"], s["step"]) not in kv:
                continue
            tokens, tensor = kv[(s["phase"], s["step"])]
            rows.append({"point_id": pid, "phase": s["phase"], "step": s["step"], "tokens": tokens,
                         "tensor_bytes": int(tensor), "requested_bytes": s["requested_bytes"],
                         "allocated_bytes": s["allocated_bytes"], "reserved_bytes": s["reserved_bytes"],
                         "measured_reserved_bytes": s.get("measured_reserved_bytes", "")})
        dec = [r for r in rows if r["phase"] == "decode"]
        if len(dec) < 2:
            continue
        t = [r["tokens"] for r in dec]
        col = lambda k: [r[k] for r in dec]                                               # noqa: E731
        meas = [r["measured_reserved_bytes"] for r in dec]
        sc = staircase(t, col("reserved_bytes"))
        points.append({"point_id": pid, "steps": len(dec), "tensor": _slope(t, col("tensor_bytes")),
                       "allocated": _slope(t, col("allocated_bytes")), "reserved": _slope(t, col("reserved_bytes")),
                       "measured": _slope(t, meas) if all(v != "" for v in meas) else None,
                       "rounding": _slope(t, [r["allocated_bytes"] - r["requested_bytes"] for r in dec]),
                       "free_in_segments": _slope(t, [r["reserved_bytes"] - r["allocated_bytes"] for r in dec]),
                       "jumps": sc["jumps"], "jump": sc["median_jump_bytes"], "period": sc["median_period_tokens"]})
        steps += rows
    return steps, points


def steps_csv(steps: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=STEP_COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows(steps)
    return buf.getvalue()


def kv_allocator_section(run_dir: Path, measurements, names: dict | None = None) -> list[str]:
    """Markdown lines (empty when the run has no traces); writes kv_allocator.csv beside the report. names:
    point_id → its shape name (analysis/names.py): the prose names no hash; the CSV keeps the id."""
    names = names or {}
    steps, points = kv_allocator_rows(run_dir, measurements)
    if not points:
        return []
    (Path(run_dir) / "kv_allocator.csv").write_text(steps_csv(steps))
    f = lambda v: "" if v is None else f"{v:,.0f}"                                         # noqa: E731
    lines = ["", "## KV memory as CUDA's caching allocator reserves it (trace replay)", "",
             "Each dynamic-cache point's traced trajectory replayed through theory/allocator.py (PyTorch's rules: 512 B "
             "rounding, 2 MiB small segments, 20 MiB below 10 MiB, best fit with splitting, merging of freed "
             "neighbours). Slopes over the decode steps, bytes per token; *predicted* is the replay, *measured* the "
             "allocator's own reserved bytes (CUDA runs only). Rounding = allocated − requested; free in segments = "
             "reserved − allocated. Every step: kv_allocator.csv.", "",
             "| point | decode steps | tensors | allocated (predicted) | reserved (predicted) | reserved (measured) | "
             "rounding | free in segments | reserved jumps: count, median size, median period (tokens) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for p in points:
        lines.append(f"| {names.get(p['point_id'], p['point_id'])} | {p['steps']} | {f(p['tensor'])} | {f(p['allocated'])} | {f(p['reserved'])} | "
                     f"{f(p['measured']) or 'n/a (no CUDA)'} | {f(p['rounding'])} | {f(p['free_in_segments'])} | "
                     + (f"{p['jumps']}, {f(p['jump'])} B, {f(p['period'])} |" if p["jumps"] else
                        "none in these steps (the segments reserved at the prefill absorb them) |"))
    first = points[0]["point_id"]
    rows = [r for r in steps if r["point_id"] == first]
    keep = [r for i, r in enumerate(rows) if i in (0, len(rows) - 1) or r["reserved_bytes"] != rows[i - 1]["reserved_bytes"]
            or r["measured_reserved_bytes"] != rows[i - 1]["measured_reserved_bytes"]]
    lines += ["", f"Point {names.get(first, first)}, the steps where reserved bytes change (and the first and last), bytes:", "",
              "| phase | step | tokens | tensors | allocated (predicted) | reserved (predicted) | reserved (measured) |",
              "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['phase']} | {r['step']} | {r['tokens']} | {f(r['tensor_bytes'])} | {f(r['allocated_bytes'])} | "
              f"{f(r['reserved_bytes'])} | {f(r['measured_reserved_bytes'] or None) or 'n/a'} |" for r in keep]
    return lines
