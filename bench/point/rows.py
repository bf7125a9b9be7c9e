"""A point's measurement rows (measurements.csv, samples.csv): the fixed fields of the point as run, one row per
pass with its statistics, what the adaptive repeats and the execution mode add, and the failure row."""
import statistics

from bench.profiling.cpumem import cpu_memory_fields
from bench.sweep import Point
from bench.timing.repeats import LONG_TRAJECTORY_STEPS, tracked_rows
from bench.timing.stats import median_ci
from theory.asrun import recorded_terms



def base_row(p: Point, point_id: str, device, dtype: str, attention: str | None = None) -> dict:
    """attention: what the built model really runs, when transformers chose otherwise (Gemma-2 has no sdpa path).
    How theory should predict the run "as run" comes from theory/asrun.py."""
    spec = p.spec()
    attention = attention or p.attention
    return {
        "point_id": point_id, "batch": p.batch, "prompt_len": p.prompt_len, "generated": p.generated,
        "hidden_size": spec.hidden_size, "num_hidden_layers": spec.num_hidden_layers,
        "num_attention_heads": spec.num_attention_heads, "num_key_value_heads": spec.num_key_value_heads,
        "head_dim": spec.head_dim, "intermediate_size": spec.intermediate_size, "vocab_size": spec.vocab_size,
        "model": p.model or "", "dtype": dtype, "device": device.kind, "threads": device.threads,
        "attention": attention, "cache": p.cache, "execution": p.execution,
        **recorded_terms(attention, p.cache, p.max_cache_len, spec.num_key_value_heads < spec.num_attention_heads),
    }


def failure_row(base: dict, status: str, message: str) -> dict:
    """The one row of a point that did not measure: skipped_memory, oom, error, timeout."""
    return {**base, "phase": "prefill", "step": 0, "context_len": 0, "status": status, "message": message}


def error_message(e: BaseException) -> str:
    first = (str(e).strip().splitlines() or [""])[0]
    return f"{type(e).__name__}: {first}"[:300]


def tokens_per_s(p: Point, trajectory_index: int, time_s: float) -> float | None:
    """Throughput of one timed pass: batch × prompt tokens / prefill time, or batch × 1 token / decode step time."""
    tokens = p.batch * (p.prompt_len if trajectory_index == 0 else 1)
    return tokens / time_s if time_s > 0 else None


ROW_COLUMNS = ["time_ci_low_s", "time_ci_high_s", "time_ci_met", "repeats_disturbed", "interference", "canary_ratio"]


def interval_fields(measured, rule, base_s: float | None) -> list[dict]:
    """Per pass (prefill, decode steps): the 95% interval of the median over the trajectories used, and whether
    the stopping target was met for the row that stands for it (the mean decode step on long trajectories)."""
    used = measured.used
    log = measured.log
    n_pass = len(used[0].times_s)
    verdict = [median_ci(r).met(rule.target_rel) for r in tracked_rows(used)]
    long = n_pass - 1 > LONG_TRAJECTORY_STEPS
    readings = log.canary_readings if log is not None else []
    ratio = statistics.median(readings) / base_s if readings and base_s else None
    out = []
    for i in range(n_pass):
        ci = median_ci([t.times_s[i] for t in used])
        met = verdict[0 if i == 0 else 1] if long else verdict[i]
        out.append({"time_ci_low_s": ci.low_s, "time_ci_high_s": ci.high_s, "time_ci_met": int(met),
                    "repeats_disturbed": sum(log.disturbed) if log else 0,
                    "interference": int(log.interference) if log else 0, "canary_ratio": ratio})
    return out


def sample_marks(measured) -> list[int]:
    """1 for each repeat taken while the canary ran slow (kept in samples.csv, left out of the statistics)."""
    return [int(d) for d in measured.log.disturbed] if measured.log is not None else [0] * len(measured.repeats)


def mode_fields(watch, m) -> dict:
    """Compile time (apart from the timed steps), graphs compiled, and recompilations during the timed and
    memory trajectories: a point that recompiled there is flagged `recompiled`, never averaged in as ok. A
    CUDA-graph point whose graphs Inductor skipped is `cudagraph_skipped` (its steps ran kernel by kernel, not as
    one launch); one that recorded a graph while timed is `cudagraph_rerecorded` (a capture was timed)."""
    steady_s = sum(st.median_s for st in m.step_stats())
    recompiles = watch.recompiles_since_settled()
    skips, rerecords = watch.cudagraph_skips(), watch.rerecords_since_settled()
    flags = [(recompiles, "recompiled", f"{recompiles} graph(s) compiled during the timed trajectories"),
             (skips, "cudagraph_skipped", f"{skips} graph(s) ran without a CUDA graph (Inductor's cudagraph_skips; "
                                          "its log says why)"),
             (rerecords, "cudagraph_rerecorded", f"{rerecords} CUDA graph(s) recorded during the timed trajectories")]
    raised = [(status, text) for n, status, text in flags if n]
    return {"compile_s": watch.compile_s(steady_s), "graphs_compiled": watch.graphs() + recompiles,
            "recompiles_timed": recompiles, "cudagraph_skips": skips, "cudagraph_rerecords_timed": rerecords,
            "status": raised[0][0] if raised else "ok", "message": "; ".join(text for _, text in raised)}


def point_rows(job, base: dict, build_s: float, t, probed) -> tuple[list[dict], list[dict]]:
    """(rows, samples): one row per pass (prefill, then each decode step); the cold trajectory and every repeat
    in the samples (repeat −1 is the cold one)."""
    p, point_id, m = job.point, job.point_id, t.m
    out, samples = [], []
    for i, st in enumerate(t.step_stats):
        phase, step = ("prefill", 0) if i == 0 else ("decode", i - 1)
        mem = m.memory.memory[i]
        out.append({**base, **t.mode_fields, "phase": phase, "step": step,
                    "context_len": 0 if i == 0 else p.prompt_len + i - 1,
                    "time_s": st.median_s, "time_p10_s": st.p10_s, "time_p90_s": st.p90_s, "repeats": st.n,
                    "time_cold_s": m.cold.times_s[i], "kv_cache_bytes": m.cold.kv_bytes[i],
                    "weight_bytes": probed.weight_bytes,
                    "mem_allocated_bytes": mem.allocated_bytes, "mem_reserved_bytes": mem.reserved_bytes,
                    "mem_allocated_peak_total_bytes": mem.allocated_peak_total_bytes,
                    "mem_reserved_peak_total_bytes": mem.reserved_peak_total_bytes,
                    "device_used_bytes": mem.device_used_bytes, "rss_peak_bytes": mem.rss_peak_bytes,
                    **cpu_memory_fields(probed.cpu_mem, i), "build_s": build_s,
                    "n_dispatch": probed.n_dispatch[0 if i == 0 else 1], "hidden_syncs": probed.hidden_syncs,
                    **probed.gpu_state, "tokens_per_s": tokens_per_s(p, i, st.median_s), **t.intervals[i]})
        samples.append({"point_id": point_id, "phase": phase, "step": step, "repeat": -1, "time_s": m.cold.times_s[i]})
        samples += [{"point_id": point_id, "phase": phase, "step": step, "repeat": r, "time_s": tr.times_s[i],
                     "disturbed": t.marks[r]} for r, tr in enumerate(m.repeats)]
    return out, samples
