"""Points whose working set fits the last-level cache but whose kernels were timed from DRAM (copies rotated): the
composition assumes every pass streams from DRAM, the model may not. They are counted apart in the composed
score, named in one flag, and the first screen gives the figure without them (synthetic rows, nothing timed)."""
import pandas as pd

from analysis.compose import add_composed, composed_score, partly_resident
from analysis.fit import last_cache_bytes
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
    assert _partly_text(v) == "; 6 of them fit the LLC but were timed from DRAM, flag partly_resident: without them 2% / 8%"
    assert _partly_text({"partly_resident_points": 0}) == ""


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
    assert _partly_text(s) == "; all 1 fit the LLC but were timed from DRAM, flag partly_resident"


def test_the_last_cache_is_the_llc_on_a_cpu_and_the_l2_on_cuda():
    cpu = {"ceilings": {"fp32": {"llc_bytes": 32 * 2**20}}, "ceilings_detail": {"fp32": {}}}
    cuda = {"ceilings": {"bf16": {"llc_bytes": None}}, "ceilings_detail": {"bf16": {"l2_cache_bytes": 60 * 2**20}}}
    assert last_cache_bytes(cpu) == 32 * 2**20 and last_cache_bytes(cuda) == 60 * 2**20
    assert last_cache_bytes(cuda, "bf16") == 60 * 2**20 and last_cache_bytes({}) is None
