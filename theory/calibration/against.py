"""A never-built prediction against the target's own kernels timed in the same rounds (`python -m
bench.kernels.versus --own-kernels`): where the error of a prediction from other models' kernels sits.

The own kernels never enter the prediction. They give a second composition of the same passes, from the target's
own shapes and its own framework cost, so that, per phase,

    measured / predicted = (measured / own) × (own / predicted)
                           composition        interpolation

composition: the model against its own pieces (what `bench run` reports as composed), in the same minutes;
interpolation: the calibration's interpolation (kernels and framework) against the pieces it stood in for. Each op
carries a share of the interpolation error, (own − predicted) / predicted pass time, in points; the shares, the
framework's and the residual's (a calibration from full passes predicts one, `versus --full-passes`; the own
kernels carry none: that is the composition's) add up to the interpolation error.
"""
from theory.calibration.predict import build_index, predict_pass, sized, upgrade
from theory.model import ModelSpec

TOP_OPS = 3            # ops named on the one line (versus.py): those carrying the largest shares


def phase_parts(cal: dict, model: ModelSpec, batch: int, prompt_len: int, generated: int) -> dict:
    """Per phase, seconds: each op's time over its instances, the framework's and the pass's; decode is the mean
    over the steps predict.request() averages into TPOT (contexts prompt_len … prompt_len+generated−2)."""
    mcl = prompt_len + generated
    cal = sized(upgrade(cal, model), model)
    index = build_index(cal)
    pre = [predict_pass(cal, model, "prefill", batch, prompt_len, 0, mcl, index)]
    steps = [predict_pass(cal, model, "decode", batch, prompt_len, prompt_len + s, mcl, index)
             for s in range(generated - 1)]

    def mean(passes):
        n = len(passes)
        return {"ops_s": {op: sum(p.ops[op]["time_s"] for p in passes) / n for op in passes[0].ops},
                "framework_s": sum(p.framework_s for p in passes) / n,
                "residual_s": sum(p.residual_s for p in passes) / n,
                "total_s": sum(p.time_s for p in passes) / n}
    return {"prefill": mean(pre), "decode": mean(steps) if steps else None}


def split(measured_s: float, predicted: dict, own: dict) -> dict:
    """One phase's error split (module docstring). predicted / own: phase_parts' entries for that phase."""
    p_total, o_total = predicted["total_s"], own["total_s"]
    ops = sorted(set(predicted["ops_s"]) | set(own["ops_s"]))
    share = {op: (own["ops_s"].get(op, 0.0) - predicted["ops_s"].get(op, 0.0)) / p_total for op in ops}
    p_kernels, o_kernels = sum(predicted["ops_s"].values()), sum(own["ops_s"].values())
    return {"error": measured_s / p_total - 1, "composition_error": measured_s / o_total - 1,
            "interpolation_error": o_total / p_total - 1,
            "predicted_s": p_total, "own_s": o_total,
            "kernels_own_over_predicted": o_kernels / p_kernels - 1,
            "framework_own_over_predicted": own["framework_s"] / predicted["framework_s"] - 1
            if predicted["framework_s"] > 0 else None,
            "framework_share": (own["framework_s"] - predicted["framework_s"]) / p_total,
            "residual_share": (own.get("residual_s", 0.0) - predicted.get("residual_s", 0.0)) / p_total,
            "predicted_residual_s": predicted.get("residual_s", 0.0),
            "op_share": share,
            "op_own_over_predicted": {op: own["ops_s"][op] / predicted["ops_s"][op] - 1 for op in ops
                                      if predicted["ops_s"].get(op, 0) > 0 and op in own["ops_s"]}}


def top_ops(s: dict, n: int = TOP_OPS) -> list[tuple[str, float]]:
    """The ops carrying the largest interpolation shares (by size, either sign), largest first."""
    return sorted(s["op_share"].items(), key=lambda kv: (-abs(kv[1]), kv[0]))[:n]
