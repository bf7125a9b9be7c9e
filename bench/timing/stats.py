"""Distribution-free statistics (torch-free): the stopping rule's confidence interval of the median from order
statistics, and the per-pass median and quantiles of the timed repeats.

For n independent samples, the interval [x_(j), x_(n+1-j)] (1-indexed order statistics) covers the population
median with probability 1 − 2·P(B ≤ j−1), B ~ Binomial(n, 1/2) (e.g. Hollander & Wolfe, Nonparametric
Statistical Methods, ch. 3). No normality assumption, which matters on a box whose noise is one-sided and bursty.
Below n = 6 no such interval reaches 95%: the range is returned and marked as not covering.
"""
import statistics
from dataclasses import dataclass
from math import comb

CONFIDENCE = 0.95
TARGET_REL = 0.02           # the stopping target: the interval within ±2% of the median
SLOW_REL = 0.05             # an interference canary reading > 5% above the run's baseline: disturbed


@dataclass(frozen=True)
class MedianCI:
    median_s: float
    low_s: float
    high_s: float
    n: int
    covers: bool            # False: too few samples for the requested confidence (the range is returned)

    @property
    def half_width_rel(self) -> float:
        """The wider side of the interval, relative to the median."""
        if self.median_s <= 0:
            return float("inf")
        return max(self.median_s - self.low_s, self.high_s - self.median_s) / self.median_s

    def met(self, target_rel: float = TARGET_REL) -> bool:
        return self.covers and self.half_width_rel <= target_rel


def order_index(n: int, confidence: float = CONFIDENCE) -> int | None:
    """Largest j (1-indexed) with 2·P(B ≤ j−1) ≤ 1 − confidence, B ~ Binomial(n, 1/2); None if there is none."""
    alpha_half = (1 - confidence) / 2
    best, cdf = None, 0.0
    for j in range(1, n // 2 + 1):
        cdf += comb(n, j - 1) / 2 ** n          # P(B ≤ j−1)
        if cdf > alpha_half:
            break
        best = j
    return best


def median_ci(xs: list[float], confidence: float = CONFIDENCE) -> MedianCI:
    if not xs:
        raise ValueError("median_ci needs at least one sample")
    s = sorted(xs)
    n = len(s)
    j = order_index(n, confidence)
    if j is None:
        return MedianCI(statistics.median(s), s[0], s[-1], n, False)
    return MedianCI(statistics.median(s), s[j - 1], s[n - j], n, True)


@dataclass(frozen=True)
class StopRule:
    """Measure whole trajectories until every tracked row's interval is within ±target_rel of its median, or
    the point's time budget is spent; never fewer than min_repeats nor more than max_repeats."""
    min_repeats: int = 6
    max_repeats: int = 30
    max_point_s: float = 6.0
    target_rel: float = TARGET_REL

    def all_met(self, rows: list[list[float]]) -> bool:
        return all(median_ci(r).met(self.target_rel) for r in rows)

    def done(self, rows: list[list[float]], elapsed_s: float, next_repeat_s: float) -> bool:
        """rows: the samples kept so far, one list per tracked row (all of the same length n).
        next_repeat_s: what one more repeat is expected to cost (the budget is never knowingly overrun)."""
        n = len(rows[0]) if rows else 0
        if n >= self.max_repeats:
            return True
        if n < self.min_repeats:
            return False
        return self.all_met(rows) or elapsed_s + next_repeat_s > self.max_point_s


@dataclass
class StepStats:
    median_s: float
    p10_s: float
    p90_s: float
    n: int


def quantile(xs: list[float], q: float) -> float:
    s = sorted(xs)
    if len(s) == 1:
        return s[0]
    pos = q * (len(s) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def stats(xs: list[float]) -> StepStats:
    return StepStats(statistics.median(xs), quantile(xs, 0.1), quantile(xs, 0.9), len(xs))
