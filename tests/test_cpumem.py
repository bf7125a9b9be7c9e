"""CPU allocated bytes and allocation peak per pass from the profiler's memory events."""
import pandas as pd

from analysis.kvmem import kv_table
from bench.profiling.cpumem import per_pass


def test_per_pass_walks_events_in_time_order():
    passes = [(10, 20, 0), (30, 40, 1)]
    mem = [(5, 100),                  # before the first pass: live, not this pass's allocation
           (11, 50), (12, 70), (13, -50), (14, -70),
           (25, -100),                # between passes
           (31, 10), (32, -10)]
    a, b = per_pass(passes, mem)
    assert a == {"allocated_bytes": 120, "freed_bytes": 120, "peak_live_bytes": 220}
    assert b == {"allocated_bytes": 10, "freed_bytes": 10, "peak_live_bytes": 10}


def test_tiny_run_measures_the_transient_copy_on_cpu(tiny_run):
    rows = pd.read_csv(tiny_run / "measurements.csv")
    ok = rows[rows["status"] == "ok"]
    assert (ok["mem_source"] == "profiler").all() and ok["mem_allocated_step_bytes"].gt(0).all()
    table = kv_table(ok.assign(context_len=ok["context_len"].astype(int)))
    dyn, static = table[table["cache"] == "dynamic"], table[table["cache"] == "static"]
    # The peak never grows slower than the cache; once a copy of the cache is the largest transient it grows
    # faster: eager GQA repeats K/V for every head (a full-size copy per layer, alive with the cache).
    assert (dyn["factor_transient"] > 0.999).all() and (dyn["factor_transient"] < 4.0).all()
    eager = set(ok[(ok["attention"] == "eager") & (ok["cache"] == "dynamic")]["point_id"])
    assert eager and (dyn[dyn["point_id"].isin(eager)]["factor_transient"] > 1.5).all()
    # sdpa: at most one layer's old K or V is alive beside the cache (1 + 1/(2L) ≤ 1.5); a profile that missed
    # the frees of blocks allocated before it would count every old copy (≥ 2x).
    assert (dyn[~dyn["point_id"].isin(eager)]["factor_transient"] < 1.6).all()
    assert (static["allocated_peak_bytes_per_token"].abs() < 1.0).all()   # the control allocates up front
