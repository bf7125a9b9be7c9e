"""Flags: the large gaps between measured and predicted, each with a plain-words message and the figures
behind it. Every flag is a dict {kind, message, ...figures}."""
import numpy as np
import pandas as pd

from analysis.compose import partly_resident, resident_floor_s
from analysis.fit import CACHED_READ_SPEEDUP
from analysis.intervals import excludes, ratio_interval, slope_interval
from analysis.kvmem import kv_table, slope, slope_se
from analysis.names import names_by_id, point_name
from bench.timing.stats import TARGET_REL

SHAPE_KEYS = ["hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim",
              "intermediate_size", "vocab_size", "batch", "prompt_len", "generated", "dtype", "attention", "cache"]
NOISY_SPREAD = 0.5             # (p90 − p10) / median above this: too noisy to judge


def per_point(df: pd.DataFrame) -> pd.DataFrame:
    """One row per point: prefill time and mean decode step (time per output token), measured and predicted."""
    out = []
    for pid, g in df.groupby("point_id", sort=False):
        pre, dec = g[g["phase"] == "prefill"], g[g["phase"] == "decode"]
        rec = {k: g.iloc[0][k] for k in SHAPE_KEYS}
        rec["point_id"] = pid
        rec["model"] = g.iloc[0]["model"] if "model" in g and isinstance(g.iloc[0]["model"], str) else ""
        for name, part in (("prefill", pre), ("decode", dec)):
            for col in ("measured_time_s", "predicted_time_s_ceilings", "predicted_time_s_fitted",
                        "predicted_time_s_calibrated",
                        "predicted_time_s_datasheet", "time_p10_s", "time_p90_s",
                        *[c for c in ("time_ci_low_s", "time_ci_high_s") if c in g.columns]):
                rec[f"{name}_{col}"] = float(part[col].astype(float).mean()) if len(part) else np.nan
            rec[f"{name}_regime"] = part["regime"].mode().iloc[0] if len(part) else ""
        out.append(rec)
    return pd.DataFrame(out)


def sweeps_along(points: pd.DataFrame, axis: str) -> list[pd.DataFrame]:
    """Groups of points that differ only along `axis` (at least three values)."""
    keys = [k for k in SHAPE_KEYS if k != axis and not (axis == "hidden_size" and k in ("num_attention_heads",
                                                                                         "num_key_value_heads", "intermediate_size"))]
    keys += ["model"] if "model" in points else []          # one model's points: families never form one sweep
    groups = []
    for _, g in points.groupby(keys, dropna=False):
        if g[axis].nunique() >= 3:
            groups.append(g.sort_values(axis))
    return groups


def launch_floor_flags(points: pd.DataFrame) -> list[dict]:
    flags = []
    for g in sweeps_along(points, "hidden_size"):
        for phase in ("decode", "prefill"):
            m = g[f"{phase}_measured_time_s"].to_numpy()
            p = g[f"{phase}_predicted_time_s_ceilings"].to_numpy()
            measured_growth, predicted_growth = m[-1] / m[0], p[-1] / p[0]
            overhead_widths = g.loc[g[f"{phase}_regime"] == "overhead-bound", "hidden_size"]
            below = int(overhead_widths.max()) if len(overhead_widths) else None
            if measured_growth < 0.5 * predicted_growth:
                flags.append({
                    "kind": "launch_floor", "phase": phase,
                    "message": (f"{phase} time grows {measured_growth:.2f}x from width {g['hidden_size'].iloc[0]} to "
                                f"{g['hidden_size'].iloc[-1]} while the roofline grows {predicted_growth:.2f}x: a fixed "
                                f"per-op cost hides the width" + (f"; overhead dominates up to width {below}" if below else "")),
                    "widths": g["hidden_size"].astype(int).tolist(), "measured_time_s": m.tolist(),
                    "predicted_time_s": p.tolist(), "overhead_bound_up_to_width": below})
    return flags


def depth_flags(points: pd.DataFrame) -> list[dict]:
    flags = []
    for g in sweeps_along(points, "num_hidden_layers"):
        x = g["num_hidden_layers"].to_numpy(float)
        y = g["decode_measured_time_s"].to_numpy(float)
        coef = np.polyfit(x, y, 1)
        resid = np.abs(np.polyval(coef, x) - y) / y
        linear = bool(resid.max() <= 0.15)
        flags.append({
            "kind": "depth_scaling" if linear else "depth_nonlinear",
            "message": (f"decode step time vs depth {'is' if linear else 'is NOT'} linear: {coef[0] * 1e3:.3f} ms per "
                        f"layer plus {coef[1] * 1e3:.3f} ms fixed; largest residual {resid.max():.1%}"),
            "depths": x.astype(int).tolist(), "measured_time_s": y.tolist(),
            "ms_per_layer": coef[0] * 1e3, "fixed_ms": coef[1] * 1e3, "max_residual": float(resid.max())})
    return flags


def context_growth_flags(df: pd.DataFrame, min_steps: int = 32, samples: pd.DataFrame | None = None) -> list[dict]:
    """Decode step time against context: the measured slope beside the as-run and ideal slopes. With samples,
    the slope is the median of one slope per repeat and "± half" its 95% interval (analysis/intervals.py), so a
    level shift within a trajectory cannot pass for growth; without, two standard errors over the steps."""
    flags = []
    dec = df[df["phase"] == "decode"]
    for pid, g in dec.groupby("point_id", sort=False):
        if len(g) < min_steps:
            continue
        ms, se = slope_se(g["context_len"], g["measured_time_s"])
        per_repeat = slope_interval(samples, pid)
        if per_repeat is not None:                           # half the 95% interval stands for 2·se below
            ms, lo, hi, _ = per_repeat
            se = max(ms - lo, hi - ms) / 2
        ps = slope(g["context_len"], g["predicted_time_s_ceilings"])
        ideal = slope(g["context_len"], g["predicted_time_s_ceilings_ideal"])
        r0 = g.iloc[0]
        head = (f"{point_name(r0)} ({r0['cache']} cache) over {len(g)} steps: decode step "
                f"grows {ms * 1e9:.0f} ± {2 * se * 1e9:.0f} ns per context token (as-run theory {ps * 1e9:.0f} ns, "
                f"ideal append {ideal * 1e9:.0f} ns)")
        if abs(ps) < 2 * se:                                 # theory's growth is below what this run resolves
            if abs(ms) < 2 * se:
                kind, tail = "context_growth", ": flat within noise, as theory expects at this size"
            else:
                kind, tail = "context_growth_mismatch", ": theory predicts no visible growth, but the step " + ("grows" if ms > 0 else "shrinks")
        else:
            ratio = ms / ps
            kind = "context_growth" if 0.5 <= ratio <= 2 else "context_growth_mismatch"
            tail = f": {ratio:.2f}x the as-run slope" + ("" if abs(ms - ideal) < 2 * se else
                                                           f", {ms / ideal:.2f}x the ideal append")
        flags.append({"kind": kind, "point_id": pid, "message": head + tail, "measured_s_per_token": ms,
                      "measured_slope_se": se, "predicted_s_per_token": ps, "ideal_s_per_token": ideal})
    return flags


def attention_impl_flags(points: pd.DataFrame) -> list[dict]:
    flags = []
    keys = [k for k in SHAPE_KEYS if k != "attention"]
    for _, g in points.groupby(keys, dropna=False):
        if set(g["attention"]) >= {"sdpa", "eager"}:
            s, e = g[g["attention"] == "sdpa"].iloc[0], g[g["attention"] == "eager"].iloc[0]
            for phase in ("prefill", "decode"):
                mr = e[f"{phase}_measured_time_s"] / s[f"{phase}_measured_time_s"]
                pr = e[f"{phase}_predicted_time_s_ceilings"] / s[f"{phase}_predicted_time_s_ceilings"]
                iv = ratio_interval(*(r.get(f"{phase}_time_ci_{b}_s") for r in (e, s) for b in ("low", "high")))
                ci = "" if iv is None else f" (95% interval {iv[0]:.2f}-{iv[1]:.2f})"
                resolved = iv is None or excludes(iv, 1.0)
                verdict = f"takes {mr:.2f}x{ci}" if resolved else f"is not resolved from sdpa's time: {mr:.2f}x{ci} includes 1"
                flags.append({"kind": "materialized_vs_fused" if resolved else "materialized_vs_fused_unresolved",
                              "phase": phase, "cache": s["cache"],
                              "message": (f"{phase} ({s['cache']} cache, d={s['hidden_size']}): eager (materialized) "
                                          f"{verdict} the sdpa (fused) time; theory predicts {pr:.2f}x"),
                              "measured_ratio": mr, "predicted_ratio": pr,
                              "ratio_ci_low": None if iv is None else iv[0], "ratio_ci_high": None if iv is None else iv[1]})
    return flags


def noisy_flags(df: pd.DataFrame) -> list[dict]:
    """One flag listing the points whose rows are too noisy to judge (kept in every table, not hidden): rows
    whose 95% interval of the median is wider than the target after their repeats; older runs without
    intervals fall back to the p10-p90 spread."""
    if "time_ci_met" in df.columns:
        return interval_flags(df)
    spread = (df["time_p90_s"] - df["time_p10_s"]) / df["measured_time_s"]
    noisy = df[spread > NOISY_SPREAD]
    if noisy.empty:
        return []
    per_point = noisy.groupby("point_id", sort=False).size()
    names = names_by_id(df)
    return [{"kind": "noisy", "message": f"{len(noisy)} row(s) in {len(per_point)} point(s) have a p10-p90 spread over "
             f"{NOISY_SPREAD:.0%} of their median (worst {spread.max():.0%}): too noisy to judge one by one; "
             f"rows: {', '.join(f'{names.get(p, p)} ({n})' for p, n in per_point.items())}",
             "rows": int(len(noisy)), "points": per_point.index.tolist(), "worst_spread": float(spread.max())}]


NEARLY_EVERY = 0.9            # a flag on at least this share of rows says so with a count, not a list


def interval_flags(df: pd.DataFrame) -> list[dict]:
    flags = []
    names = names_by_id(df)
    missed = df[df["time_ci_met"].fillna(0).astype(int) == 0]
    if len(missed):
        per = missed.groupby("point_id", sort=False)["repeats"].agg(["size", "max"])
        head = (f"{len(missed)} of {len(df)} row(s) in {len(per)} of {df['point_id'].nunique()} point(s) have a 95% "
                f"interval of the median wider than ±{TARGET_REL:.0%} after their repeats")
        if len(missed) >= NEARLY_EVERY * len(df):
            msg = (f"{head}: nearly every row, so the box's noise, not a few bad points; repeats per point "
                   f"{int(per['max'].min())}-{int(per['max'].max())}. Causes are judged against this noise "
                   f"(*Causes per point*); each row's interval is in joined.csv")
        else:
            msg = (f"{head}: too noisy to judge one by one; rows (repeats): "
                   + ", ".join(f"{names.get(p, p)} ({n}, {int(r)} repeats)" for p, (n, r) in per.iterrows()))
        flags.append({"kind": "noisy", "message": msg, "rows": int(len(missed)), "points": per.index.tolist(),
                      "rows_total": int(len(df))})
    if "interference" in df.columns:
        hit = df[df["interference"].fillna(0).astype(int) == 1]["point_id"].unique().tolist()
        if hit:
            flags.append({"kind": "interference", "points": hit, "message": (
                f"{len(hit)} point(s) never got a quiet window: the canary ran slower than at the start of the "
                f"run (beyond the run's threshold, run.json canary_slow_rel) around too many of their repeats; "
                f"their rows use every repeat: {', '.join(names.get(p, p) for p in hit)}")})
    return flags


def in_cache_flags(df: pd.DataFrame) -> list[dict]:
    hits = df[df["in_cache"]]
    if hits.empty:
        return []
    return [{"kind": "in_cache", "message": f"{hits['point_id'].nunique()} point(s) whose weights and cache fit the "
             f"last-level cache ran faster than the DRAM roofline; flagged, not scored as error",
             "point_ids": sorted(hits["point_id"].unique().tolist())}]


def partly_resident_flags(df: pd.DataFrame) -> list[dict]:
    """One flag for the points that could keep weights cached between passes while their kernels were timed from
    DRAM (analysis/compose.py partly_resident): their composition assumes every pass streams its weights from
    DRAM, and the model may keep part of them in the cache. Where the run has a read sweep, the flag gives the
    range each decode point could fall in (resident_floor_s up to the composition) and at how many it did."""
    rows = partly_resident(df[df["composed_time_s"].notna()]) if "composed_time_s" in df else df.iloc[0:0]
    if rows.empty:
        return []
    names = names_by_id(df)
    ids = sorted(rows["point_id"].unique(), key=lambda p: names.get(p, p))
    dec = rows[rows["phase"] == "decode"]
    ratio = dec.groupby("point_id")["composed_ratio"].median()
    seen = f"; measured / composed in decode here {ratio.min():.2f}-{ratio.max():.2f}" if len(ratio) else ""
    out = {"kind": "partly_resident", "points": ids}
    floor = resident_floor_s(dec) / dec["composed_time_s"] if len(dec) else pd.Series(dtype=float)
    if floor.notna().any():
        lo = floor.groupby(dec["point_id"]).median()
        inside = int(((ratio >= lo * (1 - TARGET_REL)) & (ratio <= 1 + TARGET_REL)).sum())
        out.update(decode_points=int(ratio.size), decode_inside_range=inside)
        seen += (f"; all at the read sweep's cached rate would be {lo.min():.2f}-{lo.max():.2f} of the composition, "
                 f"and {inside} of {ratio.size} decode points fell between that and the composition (±"
                 f"{TARGET_REL:.0%})")
    basis = ("which this box's read sweep reads at least "
             f"{CACHED_READ_SPEEDUP:.2f}x faster than DRAM" if "cached_read_speedup" in rows and rows[
                 "cached_read_speedup"].notna().all() else "within the last-level cache the system reports")
    size = rows["streamed_bytes"] if "streamed_bytes" in rows else rows["working_set_bytes"]
    return [{**out, "message": f"{len(ids)} point(s) stream {size.max() / 2**20:.1f} MiB per pass at most, "
             f"{basis}, and their kernels were timed from DRAM: the model may keep part of its weights in the "
             f"cache between passes, by as much as what else shares the cache allows{seen}; points: "
             f"{', '.join(names.get(p, p) for p in ids)}"}]


def kv_flags(df: pd.DataFrame, device_kind: str) -> tuple[list[dict], pd.DataFrame]:
    """One flag for the dynamic caches (the worst point's decomposition), one for the static control."""
    table = kv_table(df)
    flags = []
    dyn = table[table["cache"] == "dynamic"] if len(table) else table
    if len(dyn):
        worst = dyn.loc[(dyn["factor_tensor"] - 1).abs().idxmax()]
        msg = (f"dynamic cache, {len(dyn)} point(s): tensors grow {dyn['factor_tensor'].min():.3f}x-"
               f"{dyn['factor_tensor'].max():.3f}x theory's bytes per token (e.g. {worst['tensor_bytes_per_token']:.0f} B "
               f"vs {worst['theory_bytes_per_token']:.0f} B, {worst['dtype']}, real KV width), and theory is "
               f"{worst['factor_width_dtype']:.2f}x the naive bf16 4·L·d")
        if device_kind == "cuda" and worst["reserved_over_naive"] is not None and not pd.isna(worst["reserved_over_naive"]):
            msg += (f"; reserved memory grows {worst['reserved_over_naive']:.2f}x naive = width/dtype "
                    f"{worst['factor_width_dtype']:.2f} x tensors {worst['factor_tensor']:.2f} x transient copies "
                    f"{worst['factor_transient']:.2f} x allocator rounding {worst['factor_rounding']:.2f}")
        elif dyn["factor_transient"].notna().any():          # CPU: the peak from the profiler's memory events
            ft = dyn["factor_transient"].dropna()
            msg += (f"; the allocation peak (profiler memory events, no allocator on CPU) grows {ft.min():.2f}x-"
                    f"{ft.max():.2f}x the cache tensors per token: the transient copy of a cache that concatenates "
                    f"itself (old and new alive at once); no reserved pool, so no rounding factor; peak RSS per token "
                    f"is a separate column of the KV table")
        else:
            msg += ("; a CPU run has no allocator counters, so the transient copy of a growing cache and allocator "
                    "rounding (the seeds' ~3x on CUDA) cannot be separated here; peak RSS per token, which includes "
                    "what the C allocator retains, is in the KV table")
        flags.append({"kind": "kv_memory", "message": msg, "points": dyn["point_id"].tolist(),
                      **{k: (None if pd.isna(v) else v) for k, v in worst.items() if k != "point_id"}})
    static = table[table["cache"] == "static"] if len(table) else table
    if len(static):
        flags.append({"kind": "kv_memory_static_control",
                      "message": f"static cache (control), {len(static)} point(s): tensor bytes grow "
                                 f"{static['tensor_bytes_per_token'].abs().max():.0f} B per token; every slot is allocated up front",
                      "points": static["point_id"].tolist()})
    return flags, table


# A profiled step whose aten ops fall outside theory's ops by more than this share (modules the profile does not
# name: bench/profiling/attribution.py), or whose MLP shows nothing where theory puts time, has incomplete
# attribution: its attention / MLP shares are left out of the share flag, and said so.
ATTRIBUTION_GAP_SHARE = 0.2


def incomplete_attribution(t: pd.DataFrame) -> pd.Series:
    """Per profiled step: True where its attribution is too incomplete to state group shares."""
    return (t["measured_share_unattributed"] > ATTRIBUTION_GAP_SHARE) | (
        (t["measured_share_mlp"] <= 0) & (t["predicted_share_mlp"] > 0))


def share_flags(shares: pd.DataFrame, names: dict | None = None) -> list[dict]:
    """Attention and MLP shares of profiled time (analysis.breakdown) against theory's, per phase, over the steps
    whose attribution is complete; the others are named in an `attribution_incomplete` flag instead."""
    flags = []
    for phase, t in (shares.groupby("phase") if len(shares) else []):
        gap = incomplete_attribution(t)
        if gap.any():
            left = sorted(t.loc[gap, "point_id"].astype(str).unique())
            flags.append({"kind": "attribution_incomplete", "phase": phase, "points": left,
                          "message": f"{phase}: {int(gap.sum())} of {len(t)} profiled step(s) ({len(left)} point(s)) "
                                     f"leave {t.loc[gap, 'measured_share_unattributed'].mean():.0%} of profiled time "
                                     f"unattributed or show no MLP time where theory puts "
                                     f"{t.loc[gap, 'predicted_share_mlp'].mean():.0%}: modules the profile does not "
                                     "name, so their attention / MLP shares are left out of attention_mlp_share: "
                                     + ", ".join((names or {}).get(p, p) for p in left)})
            t = t[~gap]
            if t.empty:
                continue
        m, p = t["measured_share_attention"].mean(), t["predicted_share_attention"].mean()
        mm, pm = t["measured_share_mlp"].mean(), t["predicted_share_mlp"].mean()
        kernels = "kernel_s" in t and t["kernel_s"].notna().all()         # CUDA: kernel time vs roofline alone
        flags.append({"kind": "attention_mlp_share", "phase": phase,
                      "message": f"{phase}: attention takes {m:.0%} and the MLP {mm:.0%} of profiled "
                                 f"{'kernel time' if kernels else 'time'} ({'theory, roofline only' if kernels else 'theory with fitted overhead'}: "
                                 f"{p:.0%} and {pm:.0%}); the profiler inflates the "
                                 f"step {t['inflation'].median():.1f}x (median), small ops most",
                      "measured_attention_share": m, "predicted_attention_share": p,
                      "measured_mlp_share": mm, "predicted_mlp_share": pm,
                      "median_inflation": float(t["inflation"].median())})
    return flags


def all_flags(df: pd.DataFrame, points: pd.DataFrame, device_kind: str,
              samples: pd.DataFrame | None = None) -> tuple[list[dict], pd.DataFrame]:
    kv, table = kv_flags(df, device_kind)
    flags = (launch_floor_flags(points) + depth_flags(points) + context_growth_flags(df, samples=samples)
             + attention_impl_flags(points) + kv + in_cache_flags(df) + partly_resident_flags(df) + noisy_flags(df))
    return flags, table
