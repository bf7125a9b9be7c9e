"""A prediction's interval: its kernels' spread (each interpolated kernel's 95% interval) widened by the
leave-one-out error of the kernel's class in the calibration itself.

Leave-one-out inside a calibration: every calibrated instance is predicted from the instances of the *other*
workloads (another model, batch or prompt; regime.Sized.tag) through the same interpolation, and its error is
|calibrated / predicted − 1|. The p90 of that error per (kernel class, phase) is how far interpolation of that
class has been seen to miss on this box. A calibration of one workload has nothing to leave out: its interval is
the kernels' spread alone, and `loo_known` is False.
"""
import statistics

from theory.calibration.regime import estimate, kernel_class, pools_phases, rate_above_in_x0


def _p90(xs: list[float]) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(0.9 * (len(xs) - 1))))]


def class_errors(index: dict) -> dict[tuple[str, str], dict]:
    """(kernel class, phase) -> {"median", "p90", "n"} of the leave-one-workload-out kernel error."""
    out = {}
    for cls, d in index.items():
        inst = d["kernel_s"]
        kc = kernel_class(cls[3:]) if cls.startswith("op:") else cls                     # index keys: class, op:<op>
        pool = pools_phases(kc)
        tags = sorted({i.tag for i in inst})
        if len(tags) < 2:
            continue
        errs: dict[str, list[float]] = {}
        for tag in tags:
            others = [i for i in inst if i.tag != tag]
            for i in (i for i in inst if i.tag == tag):
                if not any(o.regime == i.regime for o in others):
                    continue
                e = estimate(others, i.regime, i.x0, i.x1, pool, rate_above_in_x0(kc, i.regime), i.k)
                errs.setdefault(i.regime, []).append(abs(i.time_s / e.time_s - 1))
        for phase, es in errs.items():
            out[(cls, phase)] = {"median": statistics.median(es), "p90": _p90(es), "n": len(es)}
    return out


def pass_interval(ops: dict, framework_s: float, phase: str, errors: dict) -> dict:
    """[low, high] seconds: Σ count × the kernel's interval, each widened by its class's p90 LOO error."""
    low = high = framework_s
    known = True
    for o in ops.values():
        e = errors.get((o["kernel_class"], phase))
        known = known and e is not None
        p = e["p90"] if e else 0.0
        low += o["count"] * o["ci_low_s"] * max(0.0, 1 - p)
        high += o["count"] * o["ci_high_s"] * (1 + p)
    return {"low_s": low, "high_s": high, "loo_known": known}
