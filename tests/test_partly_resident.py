"""Points that could keep their weights cached between passes but whose kernels were timed from DRAM (copies rotated): the
composition assumes every pass streams from DRAM, the model may not. They are counted apart in the composed
score, named in one flag, and the first screen gives the figure without them (synthetic rows, nothing timed)."""
import pandas as pd

from analysis.compose import add_composed, composed_score, partly_resident
from analysis.fit import CACHED_READ_SPEEDUP, add_cached_reads, cached_read_speedup, last_cache_bytes, read_sweep
from analysis.flags import partly_resident_flags
from analysis.render.first_screen import _partly_text


def _row(pid: str, d: int, ratio: float, fits: bool, state: str, phase: str = "decode") -> dict:
    return {"point_id": pid, "phase": phase, "step": 1, "hidden_size": d, "num_hidden_layers": 4, "batch": 1,
            "prompt_len": 64, "generated": 16, "attention": "sdpa", "cache": "dynamic", "execution": "eager",
            "measured_time_s": ratio * 1e-3, "composed_time_s": 1e-3, "composed_ratio": ratio,
            "fits_llc": fits, "kernels_cache_state": state, "working_set_bytes": 27 * 2**20 if fits else 80 * 2**20}


def _df() -> pd.DataFrame:
    return pd.DataFrame([_row("a", 256, 0.60, True, "dram"), _row("b", 512, 1.02, False, "dram"),
                         _row("c", 128, 0.96, True, "llc")])


def test_only_a_point_that_fits_the_llc_and_was_timed_from_dram_is_partly_resident():
    assert partly_resident(_df())["point_id"].tolist() == ["a"]


def test_the_composed_score_counts_partly_resident_points_and_scores_the_rest_apart():
    s = composed_score(_df(), "decode")
    assert s["points"] == 3 and s["partly_resident_points"] == 1
    assert abs(s["median_abs_error"] - 0.04) < 1e-12         # over all three: 0.40, 0.02, 0.04
    rest = s["without_partly_resident"]
    assert rest["points"] == 2 and abs(rest["median_abs_error"] - 0.03) < 1e-12


def test_no_partly_resident_point_leaves_the_score_as_it_was():
    s = composed_score(_df().iloc[1:], "decode")
    assert s["partly_resident_points"] == 0 and "without_partly_resident" not in s


def test_the_flag_names_its_points_by_shape_with_measured_over_composed():
    (flag,) = partly_resident_flags(_df())
    assert flag["kind"] == "partly_resident" and flag["points"] == ["a"]
    assert "d=256 L=4 b=1 T=64 G=16" in flag["message"] and "0.60-0.60" in flag["message"]
    assert "a" not in flag["message"].split("points: ")[1].split()      # a shape, not the id
    assert partly_resident_flags(_df().iloc[1:]) == []


def test_the_first_screen_gives_the_figure_without_them():
    v = {"partly_resident_points": 6,
         "without_partly_resident": {"median_abs_error": 0.02, "p90_abs_error": 0.08, "points": 20}}
    assert _partly_text(v) == ("; 6 of them could stay cached between passes but were timed from DRAM, flag partly_resident: "
                                "without them 2% / 8%")
    assert _partly_text({"partly_resident_points": 0}) == ""


def test_one_partly_resident_point_is_said_in_the_singular():
    v = {"partly_resident_points": 1,
         "without_partly_resident": {"median_abs_error": 0.02, "p90_abs_error": 0.08, "points": 25}}
    assert _partly_text(v) == ("; 1 of them could stay cached between passes but was timed from DRAM, flag "
                               "partly_resident: without it 2% / 8%")


def test_the_kernels_cache_state_is_read_from_their_ids(tmp_path):
    ids = {"a": "linear|q_proj|fp32|m=1 n=256 k=256|dram", "b": "linear|q_proj|fp32|m=1 n=512 k=512|llc"}
    compose = pd.DataFrame([{"point_id": p, "phase": "decode", "step": 1, "context_len": 65, "op": "q_proj",
                             "count": 4, "kernel_id": k, "kernel_s": 1e-5, "kernel_ci_low_s": 1e-5,
                             "kernel_ci_high_s": 1e-5, "interpolated": 0, "kernels_wall_s": 1.0}
                            for p, k in ids.items()])
    compose.to_csv(tmp_path / "compose.csv", index=False)
    pd.DataFrame([{"point_id": p, "phase": "decode", "step": 1, "tiny_time_s": 1e-4, "tiny_kernels_s": 5e-5,
                   "framework_s": 5e-5, "tiny_n_dispatch": 40, "framework_per_dispatch_s": 1e-6} for p in ids]
                 ).to_csv(tmp_path / "framework.csv", index=False)
    df = pd.DataFrame([{"point_id": p, "phase": "decode", "step": 1, "measured_time_s": 1e-4} for p in ids])
    out = add_composed(df, tmp_path).set_index("point_id")
    assert out.loc["a", "kernels_cache_state"] == "dram" and out.loc["b", "kernels_cache_state"] == "llc"


def test_a_point_that_outgrows_the_llc_during_decode_is_not_partly_resident():
    df = _df()
    late = {**_row("a", 256, 0.62, False, "dram"), "step": 2}          # its cache grew past the LLC at step 2
    df = pd.concat([df, pd.DataFrame([late])], ignore_index=True)
    assert partly_resident(df).empty
    assert composed_score(df, "decode")["partly_resident_points"] == 0


def test_the_first_screen_says_so_when_every_point_is_partly_resident():
    s = composed_score(_df().iloc[:1], "decode")
    assert s["without_partly_resident"]["points"] == 0
    assert _partly_text(s) == "; the 1 point could stay cached between passes but was timed from DRAM, flag partly_resident"


def test_the_last_cache_is_the_llc_on_a_cpu_and_the_l2_on_cuda():
    cpu = {"ceilings": {"fp32": {"llc_bytes": 32 * 2**20}}, "ceilings_detail": {"fp32": {}}}
    cuda = {"ceilings": {"bf16": {"llc_bytes": None}}, "ceilings_detail": {"bf16": {"l2_cache_bytes": 60 * 2**20}}}
    assert last_cache_bytes(cpu) == 32 * 2**20 and last_cache_bytes(cuda) == 60 * 2**20
    assert last_cache_bytes(cuda, "bf16") == 60 * 2**20 and last_cache_bytes({}) is None


MIB = 2**20
# Read sweeps as two boxes measured them (run.json ceilings_detail.fp32.llc_read_sweep, GB/s by MiB):
EPYC = {1: 77.7, 2: 77.8, 4: 75.8, 6: 75.4, 8: 77.5, 12: 73.3, 16: 55.6, 24: 23.7, 32: 22.9, 48: 21.1, 64: 21.0}
XEON = {1: 44.1, 2: 37.3, 4: 19.5, 6: 20.9, 8: 19.5, 12: 18.3, 16: 18.2, 24: 13.2, 32: 11.5, 48: 11.6, 64: 11.8}


def _sweep(box: dict) -> dict:
    return {"sizes_bytes": [m * MIB for m in box], "read_bytes_per_s": [g * 1e9 for g in box.values()],
            "effective_bytes": 16 * MIB}


def _meta(box: dict | None, llc_mib: int) -> dict:
    return {"ceilings": {"fp32": {"llc_bytes": llc_mib * MIB}},
            "ceilings_detail": {"fp32": {"llc_read_sweep": _sweep(box) if box else None}}}


def test_the_cached_read_speedup_follows_the_read_sweep_between_its_sets():
    s = _sweep(EPYC)
    assert abs(cached_read_speedup(s, 16 * MIB) - 55.6 / 21.0) < 1e-9          # on a set: its own rate
    mid = cached_read_speedup(s, 19.4 * MIB)                                    # d=256's pass, between 16 and 24
    assert 23.7 / 21.0 < mid < 55.6 / 21.0 and abs(mid - 1.77) < 0.02           # log-log, not linear (1.98)
    assert cached_read_speedup(s, 200 * MIB) == 1.0                             # beyond the sweep: DRAM
    assert abs(cached_read_speedup(s, 0.5 * MIB) - 77.7 / 21.0) < 1e-9          # below it: the smallest set's


def _points(ws_mib: list[float], ratio: float = 0.8) -> pd.DataFrame:
    return pd.DataFrame([{**_row(f"p{i}", 256, ratio, True, "dram"), "dtype": "fp32", "streamed_bytes": m * MIB,
                          "working_set_bytes": m * MIB} for i, m in enumerate(ws_mib)])


def test_a_large_shared_last_cache_that_reads_at_dram_speed_flags_no_point():
    # The bug: on a Xeon reporting a 105 MiB L3, 18 of 26 default points were flagged partly resident because
    # their working sets were under 105 MiB, yet its read sweep ran at DRAM speed from 24 MiB up and those points
    # matched their composition (20261202T190336Z). The sweep, not the reported size, says what can stay cached.
    df = add_cached_reads(_points([7.0, 19.4, 27.2, 60.9]), _meta(XEON, 105))
    assert df["fits_llc"].all()                                                  # all under the reported L3
    assert df["fits_cached_reads"].tolist() == [True, True, False, False]
    assert sorted(partly_resident(df)["point_id"].unique()) == ["p0", "p1"]


def test_without_a_read_sweep_the_reported_last_cache_decides():
    df = add_cached_reads(_points([7.0, 60.9]).assign(fits_llc=[True, False]), _meta(None, 32))
    assert df["cached_read_speedup"].isna().all() and df["fits_cached_reads"].tolist() == [True, False]
    assert read_sweep(_meta(None, 32)) is None and read_sweep(_meta(EPYC, 32))["sizes_bytes"][0] == MIB


def test_the_speedup_bar_sits_between_the_sweeps_dram_wobble_and_their_cached_plateaus():
    for box in (EPYC, XEON):
        tail = list(box.values())[-3:]                                           # the 32-64 MiB readings
        assert max(tail) / min(tail) < CACHED_READ_SPEEDUP < box[16] / box[64]


def test_a_point_that_could_stay_cached_but_ran_no_faster_than_its_composition_is_not_flagged():
    # On the Xeon its sweep read 1.5x DRAM at 16 MiB, yet d=128 and d=256 measured 1.03-1.11 of their composition.
    df = add_cached_reads(_points([7.0, 19.4], ratio=1.05), _meta(XEON, 105))
    assert df["fits_cached_reads"].all() and partly_resident(df).empty
    within = _points([7.0], ratio=0.99).assign(composed_ci_low_s=0.98e-3)     # faster, but inside its interval
    assert partly_resident(add_cached_reads(within, _meta(XEON, 105))).empty


def test_the_flag_gives_the_range_a_partly_resident_point_can_fall_in():
    df = add_cached_reads(_points([19.4, 19.4]), _meta(EPYC, 32))
    df = df.assign(point_id=["a", "b"], hidden_size=[256, 320], framework_s=[0.2e-3, 0.2e-3],
                   kernels_s=[0.8e-3, 0.8e-3], composed_time_s=[1e-3, 1e-3],
                   composed_ratio=[0.50, 0.90], measured_time_s=[0.50e-3, 0.90e-3])
    (flag,) = partly_resident_flags(df)
    # floor = (0.2 + 0.8 / 1.77) / 1.0 = 0.65 of the composition: a at 0.50 lies below it (beyond ±2%), b inside
    assert flag["decode_points"] == 2 and flag["decode_inside_range"] == 1
    assert "0.65-0.65 of the composition" in flag["message"] and "0.50-0.90" in flag["message"]
    assert "1.25x faster than DRAM" in flag["message"] and "19.4 MiB per pass" in flag["message"]
