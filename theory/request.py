"""Sum of decode-step times over a long request in bounded time.

Within one op, a decode step's FLOPs and bytes are affine in the context (or constant: static cache, a full
sliding window), so each step's roofline time is a sum of max() of affine pieces: piecewise linear in the context
with few kinks. A segment on which the time is linear (checked at three interior points, exactly as the
kink-free case requires) is summed as an arithmetic series; other segments are split in two, down to short ones
summed step by step. 10^12 steps cost a few hundred predictions instead of 10^12.
"""
from typing import Callable

REL_TOL = 1e-12


def _linear(f_a: float, f_b: float, a: int, b: int, x: int) -> float:
    return f_a + (f_b - f_a) * (x - a) / (b - a)


def sum_decode_s(step_s: Callable[[int], float], first_context: int, steps: int, exact_below: int = 256) -> float:
    """Σ step_s(c) for c = first_context … first_context + steps − 1."""
    if steps <= 0:
        return 0.0
    total, stack = 0.0, [(first_context, first_context + steps - 1)]
    cache: dict[int, float] = {}
    f = lambda c: cache[c] if c in cache else cache.setdefault(c, step_s(c))
    while stack:
        a, b = stack.pop()
        if b - a + 1 <= exact_below:
            total += sum(f(c) for c in range(a, b + 1))
            continue
        fa, fb = f(a), f(b)
        probes = [a + (b - a) // 4, a + (b - a) // 2, a + 3 * (b - a) // 4]
        if all(abs(f(x) - _linear(fa, fb, a, b, x)) <= REL_TOL * max(abs(f(x)), 1e-300) for x in probes):
            total += (b - a + 1) * (fa + fb) / 2           # arithmetic series: exact on a linear segment
        else:
            m = (a + b) // 2
            stack += [(a, m), (m + 1, b)]
    return total
