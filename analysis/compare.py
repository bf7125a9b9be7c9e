"""Line up the same points across runs (the point key leaves out the device and keeps the dtype): measured
ratios between boxes with bootstrap confidence intervals, against the ratios theory predicts from each box's
measured ceilings; each box's fraction of its own roofline; and what differs in the runs' metadata."""
import json
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.join import join
from analysis.load import load_run
from bench.timing.stats import median_ci
from theory.errors import TheoryError

META_KEYS = ["device", "device_name", "threads", "torch", "transformers", "python", "git_commit", "git_dirty",
             "host", "platform", "sweep_name", "sweep_sha1", "repeats", "cuda_version", "driver", "alloc_conf"]
BOOTSTRAP = 2000


def per_repeat(samples: pd.DataFrame) -> dict[tuple[str, str], np.ndarray]:
    """(point_id, phase) → one value per repeat: the prefill time, or the mean decode step of that trajectory."""
    s = samples[samples["repeat"] >= 0]
    out = {}
    for (pid, phase), g in s.groupby(["point_id", "phase"]):
        out[(pid, phase)] = g.groupby("repeat")["time_s"].mean().to_numpy()
    return out


def bootstrap_ratio(a: np.ndarray, b: np.ndarray, rng) -> tuple[float, float, float]:
    """median(b)/median(a) with a 95% percentile interval from resampling each side's repeats."""
    ia = rng.integers(0, len(a), (BOOTSTRAP, len(a)))
    ib = rng.integers(0, len(b), (BOOTSTRAP, len(b)))
    ratios = np.median(b[ib], axis=1) / np.median(a[ia], axis=1)
    return float(np.median(b) / np.median(a)), float(np.quantile(ratios, 0.025)), float(np.quantile(ratios, 0.975))


def compare_frame(run_dirs: list[Path]) -> tuple[pd.DataFrame, dict]:
    runs = [load_run(d) for d in run_dirs]
    base = runs[0]
    joined = [join(r) if len(r.ok) else pd.DataFrame() for r in runs]     # a run with no ok row shares no point
    reps = [per_repeat(r.samples) for r in runs]
    predicted = [j.groupby(["point_id", "phase"])["predicted_time_s_ceilings"].mean() if len(j) else pd.Series(dtype=float)
                 for j in joined]
    tokens = {(r["point_id"], r["phase"]): int(r["batch"]) * (int(r["prompt_len"]) if r["phase"] == "prefill" else 1)
              for _, r in base.ok.iterrows()}          # tokens per pass: batch × prompt, or batch × 1 per decode step
    rng = np.random.default_rng(0)
    rows = []
    for k, run in enumerate(runs[1:], start=1):
        shared = sorted(set(reps[0]) & set(reps[k]) & set(tokens))      # only points measured ok
        for pid, phase in shared:
            ratio, lo, hi = bootstrap_ratio(reps[0][(pid, phase)], reps[k][(pid, phase)], rng)
            p0, pk = predicted[0].get((pid, phase)), predicted[k].get((pid, phase))
            m0, mk = float(np.median(reps[0][(pid, phase)])), float(np.median(reps[k][(pid, phase)]))
            ca, cb = median_ci(list(reps[0][(pid, phase)])), median_ci(list(reps[k][(pid, phase)]))
            rows.append({"point_id": pid, "phase": phase, "b_index": k, "run_a": base.meta["run_id"], "run_b": run.meta["run_id"],
                         "measured_a_s": m0, "measured_b_s": mk, "measured_ratio_b_over_a": ratio,
                         "ratio_ci_low": lo, "ratio_ci_high": hi,
                         "predicted_ratio_b_over_a": (pk / p0) if p0 and pk else None,
                         "roofline_fraction_a": (p0 / m0) if p0 else None,
                         "roofline_fraction_b": (pk / mk) if pk else None,
                         "tokens_per_s_a": tokens[(pid, phase)] / m0, "tokens_per_s_b": tokens[(pid, phase)] / mk,
                         "ci_a_low_s": ca.low_s, "ci_a_high_s": ca.high_s, "ci_b_low_s": cb.low_s, "ci_b_high_s": cb.high_s,
                         "intervals_overlap": bool(ca.low_s <= cb.high_s and cb.low_s <= ca.high_s),
                         "ratio_excludes_1": bool(lo > 1 or hi < 1)})
    differ = {}
    for key in META_KEYS:
        values = [r.meta.get(key) for r in runs]
        if len({json.dumps(v, sort_keys=True) for v in values}) > 1:
            differ[key] = values
    return pd.DataFrame(rows), differ


def write_compare(run_dirs: list[Path], out: Path | None = None) -> Path:
    for d in run_dirs:
        if not (Path(d) / "run.json").exists():
            raise TheoryError(f"{d} is not a run directory (no run.json)")
    frame, differ = compare_frame([Path(d) for d in run_dirs])
    ids = [Path(d).name for d in run_dirs]
    out = out or Path("results") / ("compare-" + "-vs-".join(i[:16] for i in ids))
    out.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out / "compare.csv", index=False)
    lines = [f"# Comparing {len(run_dirs)} runs", "", "Runs: " + ", ".join(f"`{i}`" for i in ids), "",
             "## What differs between the runs", ""]
    lines += [f"- **{k}**: " + " | ".join(str(v) for v in vals) for k, vals in differ.items()] or ["- nothing recorded differs"]
    if "device" in differ or "threads" in differ or "sweep_sha1" in differ:
        lines += ["", "These runs are not alike: ratios below compare them point by point, never merged into one table."]
    lines += ["", f"## Shared points ({frame['point_id'].nunique() if len(frame) else 0})", "",
              "Ratio = run b time / run a time (median of repeats; prefill, or the mean decode step per trajectory), "
              "with a 95% bootstrap interval over repeats; predicted = the same ratio from each box's measured ceilings. "
              "Two tests, which can disagree: a and b carry each run's own 95% interval of the median (order "
              "statistics over repeats), and `overlap` says whether those two intervals overlap; the ratio's "
              "bootstrap interval tests the difference itself. Two intervals can overlap while the ratio's interval "
              "excludes 1 (each is wider than the interval of their difference), so `differ` = the ratio's interval "
              "excludes 1 is the verdict, and `overlap` only the cruder check. "
              "Throughput (tokens/s) = batch × prompt tokens / prefill time, or batch × 1 token / decode step time."]
    for _, part in (frame.groupby("b_index", sort=True) if len(frame) else []):
        lines += ["", f"### a = `{part['run_a'].iloc[0]}`, b = `{part['run_b'].iloc[0]}`", "",
                  "| point | phase | a (ms) | b (ms) | overlap | measured b/a | 95% CI | differ | predicted b/a "
                  "| a: fraction of roofline | b: fraction of roofline | a tokens/s | b tokens/s |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for _, r in part.iterrows():
            pr = "" if r["predicted_ratio_b_over_a"] is None or pd.isna(r["predicted_ratio_b_over_a"]) else f"{r['predicted_ratio_b_over_a']:.2f}"
            differ = "yes" if r["ratio_ci_low"] > 1 or r["ratio_ci_high"] < 1 else "no"
            lines.append(f"| {r['point_id']} | {r['phase']} | {r['measured_a_s'] * 1e3:.3f} "
                         f"({r['ci_a_low_s'] * 1e3:.3f}-{r['ci_a_high_s'] * 1e3:.3f}) | {r['measured_b_s'] * 1e3:.3f} "
                         f"({r['ci_b_low_s'] * 1e3:.3f}-{r['ci_b_high_s'] * 1e3:.3f}) | {'yes' if r['intervals_overlap'] else 'no'} | "
                         f"{r['measured_ratio_b_over_a']:.2f} | {r['ratio_ci_low']:.2f}-{r['ratio_ci_high']:.2f} | {differ} | {pr} | "
                         f"{r['roofline_fraction_a']:.1%} | {r['roofline_fraction_b']:.1%} | "
                         f"{r['tokens_per_s_a']:,.1f} | {r['tokens_per_s_b']:,.1f} |")
    if frame.empty:
        lines.append("No point appears in every run (the point key keeps the dtype: a CPU fp32 run and a GPU bf16 run share none).")
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
