"""KV-cache memory overhead: growth per token against theory's bytes per token, and why they differ.

The seeds' ~3x (seed 001: ~2.1 MB reserved every 20 tokens against 640 KB) is the ratio of the CUDA
allocator's *reserved* growth per token to the naive 4·L·d bytes. It factors exactly as
  reserved/naive = (theory/naive)        dtype and the real KV width (GQA) against bf16 MHA
                 × (tensor/theory)       cache tensors against theory (1.0 unless a window or layout differs)
                 × (peak/tensor)         transient copies: a dynamic cache is concatenated, old and new alive at once
                 × (reserved/peak)       allocator rounding (segments, block sizes)
measured as slopes over the decode steps. A static cache grows 0 bytes per token: the control.
A CPU run has no allocator counters: its allocated peak comes from the profiler's memory events (bench.profiling.cpumem,
mem_source = profiler), so the transient-copy factor is measured there too; there is no reserved pool, so no
rounding factor. Peak RSS (which includes what the C allocator retains) stays a separate column.
"""
import numpy as np
import pandas as pd

from theory.dtypes import dtype_bytes


def slope(x, y) -> float | None:
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = ~np.isnan(y)
    if ok.sum() < 2 or np.ptp(x[ok]) == 0:
        return None
    return float(np.polyfit(x[ok], y[ok], 1)[0])


def slope_se(x, y) -> tuple[float, float] | None:
    """Least-squares slope and its standard error."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 4 or np.ptp(x) == 0:
        return None
    coef, cov = np.polyfit(x, y, 1, cov=True)
    return float(coef[0]), float(np.sqrt(cov[0, 0]))


def _ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


def kv_decomposition(point: pd.DataFrame) -> dict:
    """One point's decode rows (tokens in cache after the step = context_len + 1)."""
    r0 = point.iloc[0]
    L, d = int(r0["num_hidden_layers"]), int(r0["hidden_size"])
    kv_dim = int(r0["num_key_value_heads"]) * int(r0["head_dim"])
    dt = dtype_bytes(r0["dtype"])
    naive = 4 * L * d                                     # seed 001: 2 (K,V) × 2 bytes (bf16) × L × d
    theory = 2 * L * kv_dim * dt * int(r0["batch"])
    naive *= int(r0["batch"])
    tokens = point["context_len"].astype(int) + 1
    col = lambda c: point[c].astype(float) if c in point else pd.Series(np.nan, index=point.index)
    tensor = slope(tokens, col("kv_cache_bytes"))
    peak = slope(tokens, col("mem_allocated_peak_total_bytes"))
    reserved = slope(tokens, col("mem_reserved_peak_total_bytes"))
    rss = slope(tokens, col("rss_peak_bytes"))
    out = {
        "point_id": r0["point_id"], "cache": r0["cache"], "dtype": r0["dtype"],
        "naive_bf16_mha_bytes_per_token": naive, "theory_bytes_per_token": theory,
        "tensor_bytes_per_token": tensor, "allocated_peak_bytes_per_token": peak,
        "reserved_bytes_per_token": reserved, "rss_peak_bytes_per_token": rss,
        "factor_width_dtype": theory / naive, "factor_tensor": _ratio(tensor, theory),
        "factor_transient": _ratio(peak, tensor), "factor_rounding": _ratio(reserved, peak),
        "reserved_over_naive": _ratio(reserved, naive), "rss_over_theory": _ratio(rss, theory),
    }
    return out


def kv_table(joined: pd.DataFrame) -> pd.DataFrame:
    dec = joined[joined["phase"] == "decode"]
    rows = [kv_decomposition(g.sort_values("context_len")) for _, g in dec.groupby("point_id", sort=False)
            if len(g) >= 3]
    return pd.DataFrame(rows)
