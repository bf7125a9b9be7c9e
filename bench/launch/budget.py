"""How long a point's measurement should take, by theory's own roofline: the basis of the isolated child's
timeout and of the README's "how long the default CUDA sweep takes".

A point runs, after building its model: one cold trajectory, warm-up trajectories for `warmup_s` (at least one),
one memory-probe trajectory, the timed repeats, one trajectory counting dispatched ops, and on CUDA a short
hidden-sync trajectory (<= 3 passes) and, when profiling, one profiled trajectory and two FLOP-counted passes.
Model build and CUDA start-up are not in the theory; the child timeout's floor covers them.

`python -m bench.launch.budget --sweep default-cuda --hardware h100-sxm-80gb` prints the estimate.
"""
import argparse
import sys

from theory.asrun import workload_terms
from theory.errors import TheoryError
from theory.hardware import HardwareSpec, load_hardware
from theory.ops import Workload
from theory.request import sum_decode_s
from theory.roofline import predict

EXTRA_TRAJECTORIES = 5          # cold, warm-up's last, memory probe, dispatch count, profiled
TIMEOUT_FLOOR_S = 300.0         # model build, CUDA context, kernel loading: not in the roofline
TIMEOUT_FACTOR = 10.0           # a real step runs a few times slower than its roofline on small shapes


def trajectory_s(p, hw: HardwareSpec, device_kind: str = "cuda") -> float:
    """Roofline time (with the spec's per-op overhead) of one prefill + generated-1 decode steps, as run
    (theory/asrun.py: a static cache's sdpa prefill is an append, eager GQA repeats K/V)."""
    spec, dtype = p.spec(), p.resolved_dtype(device_kind)
    gqa = spec.num_key_value_heads < spec.num_attention_heads

    def pass_s(phase: str, **tokens) -> float:
        terms = workload_terms(phase, p.attention, p.cache, p.max_cache_len, gqa)
        return predict(spec, hw, Workload(phase=phase, batch=p.batch, dtype=dtype, **tokens, **terms)).time_s

    ttft = pass_s("prefill", prompt_len=p.prompt_len)
    return ttft + sum_decode_s(lambda c: pass_s("decode", context_len=c), p.prompt_len, p.generated - 1)


def point_work_s(p, repeats: int, warmup_s: float, hw: HardwareSpec, device_kind: str = "cuda") -> float:
    return warmup_s + (repeats + EXTRA_TRAJECTORIES) * trajectory_s(p, hw, device_kind)


def child_timeout_s(p, repeats: int, warmup_s: float, hw: HardwareSpec | None, device_kind: str = "cuda") -> float:
    """Generous: a floor for what theory does not model, plus ten times the predicted work. Where theory cannot
    predict the point (no ceilings for its dtype, a shape outside the model), four floors."""
    try:
        if hw is not None:
            return TIMEOUT_FLOOR_S + TIMEOUT_FACTOR * point_work_s(p, repeats, warmup_s, hw, device_kind)
    except TheoryError:
        pass
    return TIMEOUT_FLOOR_S * 4


def main(argv=None) -> int:
    from bench.sweep import load_sweep
    a = argparse.ArgumentParser(prog="python -m bench.launch.budget", description=__doc__.splitlines()[0])
    a.add_argument("--sweep", default="default-cuda")
    a.add_argument("--hardware", default="h100-sxm-80gb")
    a = a.parse_args(argv)
    sweep, _ = load_sweep(a.sweep, "cuda")
    hw = load_hardware(a.hardware)
    total = sum(point_work_s(p, sweep.repeats, sweep.warmup_s, hw) for p in sweep.points)
    warm = len(sweep.points) * sweep.warmup_s
    print(f"{sweep.name}: {len(sweep.points)} points on {hw.id}: {total:.0f} s of measured trajectories and warm-up "
          f"by the roofline ({warm:.0f} s of it warm-up), model builds and ceilings not included")
    return 0


if __name__ == "__main__":
    sys.exit(main())
