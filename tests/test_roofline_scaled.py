"""The roofline in the point's own seconds (analysis/roofscale.py): the run's ceilings, measured once at its
start (and again at its end), brought to the box's speed while the point ran by the interference canary."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.classes import class_table, point_table
from analysis.load import Run
from analysis.roofscale import add_roofline, canary_end_s

START = {"id": "measured-cpu", "name": "box", "peak_flops_per_s": {"fp32": 50e9},
         "memory_bandwidth_bytes_per_s": 10e9, "memory_capacity_bytes": 2**34, "llc_bytes": 2**25,
         "llc_bandwidth_bytes_per_s": 40e9, "kind": "cpu"}
END = {"matmul_flops_per_s_by_shape": {"a": 90e9, "b": 100e9}, "gemv_read_bytes_per_s": 20e9,
       "copy_bytes_per_s_in_cache": 80e9}


def run_with(**meta) -> Run:
    return Run(Path("synthetic"), {"ceilings": {"fp32": START}, "canary_baseline_s": 2e-3, **meta},
               pd.DataFrame(), pd.DataFrame(), None)


def rows(ratio, end_s=None) -> pd.DataFrame:
    r = {"point_id": "p", "phase": "decode", "step": 0, "predicted_time_s_ceilings": 1e-3, "canary_ratio": ratio}
    if end_s is not None:
        r["predicted_time_s_ceilings_end"] = end_s
    return pd.DataFrame([r])


def test_a_slower_box_at_the_point_raises_the_roofline_by_the_canary_ratio():
    out = add_roofline(run_with(), rows(1.5)).iloc[0]          # the canary read 1.5x its start baseline
    assert out["roofline_s"] == pytest.approx(1.5e-3)
    assert out["roofline_low_s"] == out["roofline_high_s"] == pytest.approx(1.5e-3)     # no end ceilings: no range
    assert out["roofline_unscaled_s"] == pytest.approx(1e-3)                           # kept as measured


def test_a_row_without_a_canary_reading_keeps_the_unscaled_roofline():
    out = add_roofline(run_with(), rows(float("nan"), end_s=0.5e-3)).iloc[0]
    assert out["roofline_s"] == out["roofline_low_s"] == out["roofline_high_s"] == pytest.approx(1e-3)


def test_a_row_without_start_ceilings_has_no_roofline_rather_than_a_crash():
    df = rows(1.5)
    df["predicted_time_s_ceilings"] = None
    out = add_roofline(run_with(), df).iloc[0]
    assert np.isnan(out["roofline_s"]) and np.isnan(out["roofline_unscaled_s"])


def test_end_ceilings_pair_with_the_end_canary_and_the_interval_spans_both():
    series = [{"point_id": "q", "time_s": 9e-3}, {"point_id": "last", "time_s": 4e-3},
              {"point_id": "last", "time_s": 4e-3}]
    meta = {"ceilings_end": {"fp32": END}, "repeat_summary": {"canary_series": series}}
    run = run_with(**meta)
    assert canary_end_s(run.meta) == pytest.approx(4e-3)     # the last point's readings, not the slow one before
    # the point read 1.2x the start baseline (2.4 ms) = 0.6x the end reading (4 ms)
    out = add_roofline(run, rows(1.2, end_s=0.5e-3)).iloc[0]
    start, end = 1e-3 * 1.2, 0.5e-3 * 1.2 * 2e-3 / 4e-3
    assert (out["roofline_low_s"], out["roofline_high_s"]) == pytest.approx((end, start))
    assert out["roofline_s"] == pytest.approx((start + end) / 2)
    assert canary_end_s({**run.meta, "canary_end_s": 3e-3}) == 3e-3       # a recorded end reading wins


def test_end_ceilings_spec_takes_the_rates_the_start_spec_is_built_from():
    hw = run_with(ceilings_end={"fp32": END}).ceilings_end("fp32")
    assert hw.peak_flops_per_s == {"fp32": 100e9}                       # the best matmul shape
    assert hw.memory_bandwidth_bytes_per_s == 20e9 and hw.llc_bandwidth_bytes_per_s == 80e9
    assert hw.memory_capacity_bytes == START["memory_capacity_bytes"]
    assert run_with().ceilings_end("fp32") is None


def _point(pid: str, roof: float, low: float, high: float) -> dict:
    measured = 1e-3
    return {"point_id": pid, "phase": "prefill", "step": 0, "hidden_size": 512, "num_hidden_layers": 4, "batch": 1,
            "prompt_len": 64, "generated": 16, "attention": "sdpa", "cache": "dynamic", "model": "",
            "measured_time_s": measured, "composed_time_s": measured, "composed_ci_low_s": measured,
            "composed_ci_high_s": measured, "predicted_memory_s": 1e-5, "predicted_compute_s": 4e-4,
            "roofline_s": roof, "roofline_low_s": low, "roofline_high_s": high, "roofline_unscaled_s": low,
            "kernel_gap_s": 9e-4 - roof, "framework_gap_s": 1e-4, "residual_s": 0.0}


def test_class_interval_holds_the_rooflines_own_range():
    df = pd.DataFrame([_point(p, 6e-4, 5e-4, 7e-4) for p in "abc"])          # every point: 50-70% of measured
    pts = point_table(df, pd.DataFrame(), {"repeat_rel": 0.0}, 512)
    c = class_table(pts, pd.DataFrame(), df).iloc[0]
    assert (c["roofline_share_low"], c["roofline_share"], c["roofline_share_high"]) == pytest.approx((0.5, 0.6, 0.7))
    assert (c["kernel_gap_share_low"], c["kernel_gap_share_high"]) == pytest.approx((0.2, 0.4))     # the other way
    assert c["framework_share_low"] == c["framework_share_high"] == pytest.approx(0.1)
    assert c["roofline_unscaled_share"] == pytest.approx(0.5) and c["kernel_gap_unscaled_share"] == pytest.approx(0.4)


def test_a_run_reads_its_canary_beside_the_end_ceilings(tiny_run):
    import json
    meta = json.loads((tiny_run / "run.json").read_text())
    assert "ceilings_end" in meta and meta["canary_end_s"] > 0          # was absent: the end paired with a guess
    assert canary_end_s(meta) == meta["canary_end_s"]
