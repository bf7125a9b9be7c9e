"""theory/calibration/against.py: a never-built prediction's error split against the target's own kernels."""
import pytest

from theory.calibration.against import split, top_ops


def test_the_error_is_composition_times_interpolation_and_the_op_shares_add_up_to_the_latter():
    predicted = {"ops_s": {"q_proj": 4.0, "gate_proj": 5.0, "norm": 0.5}, "framework_s": 0.5, "total_s": 10.0}
    own = {"ops_s": {"q_proj": 4.4, "gate_proj": 5.0, "norm": 0.4}, "framework_s": 0.8, "total_s": 10.6}
    s = split(11.66, predicted, own)
    assert s["composition_error"] == pytest.approx(11.66 / 10.6 - 1)        # the model over its own pieces
    assert s["interpolation_error"] == pytest.approx(0.06)                  # its own pieces over predicted
    assert s["error"] == pytest.approx(0.166)
    assert s["op_share"] == pytest.approx({"q_proj": 0.04, "gate_proj": 0.0, "norm": -0.01})
    assert s["framework_share"] == pytest.approx(0.03) and s["framework_own_over_predicted"] == pytest.approx(0.6)
    assert s["kernels_own_over_predicted"] == pytest.approx(9.8 / 9.5 - 1)
    assert top_ops(s, 2) == [("q_proj", pytest.approx(0.04)), ("norm", pytest.approx(-0.01))]


def test_a_predicted_residual_is_its_own_share_against_own_kernels_that_carry_none():
    predicted = {"ops_s": {"q_proj": 4.0}, "framework_s": 0.5, "residual_s": 0.5, "total_s": 5.0}
    own = {"ops_s": {"q_proj": 4.5}, "framework_s": 0.5, "residual_s": 0.0, "total_s": 5.0}
    s = split(5.5, predicted, own)
    assert s["interpolation_error"] == pytest.approx(0.0) and s["composition_error"] == pytest.approx(0.1)
    assert s["residual_share"] == pytest.approx(-0.1) and s["op_share"]["q_proj"] == pytest.approx(0.1)
    assert sum(s["op_share"].values()) + s["framework_share"] + s["residual_share"] == pytest.approx(0.0)
