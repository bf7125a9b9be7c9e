"""A kernel's time at a shape the database's grid may lack, from the grid's points.

Each axis is interpolated as a power law between its two neighbouring grid points (linear in log size and log
time: exact at the points, monotone between, and right for both a flat launch-bound stretch and a time that
grows with the size), axes nested one inside the other (GEMM: n, then k, then m). Beyond the largest point an
axis scales by a stated exponent (time ∝ size^e: 1 for tokens, features, batch and cache length, 2 for a causal
prompt's length); below the smallest it stays at the smallest point's time (a kernel does not get faster than its
smallest measured call). Either is flagged `extrapolated` with the axis named.
"""
import bisect
import math
from dataclasses import dataclass, field

EXACT, INTERPOLATED, EXTRAPOLATED = "exact", "interpolated", "extrapolated"
_RANK = {EXACT: 0, INTERPOLATED: 1, EXTRAPOLATED: 2}


@dataclass
class Lookup:
    value: float
    how: str = EXACT
    extrapolated_axes: list[str] = field(default_factory=list)

    def merge(self, other: "Lookup") -> None:
        if _RANK[other.how] > _RANK[self.how]:
            self.how = other.how
        self.extrapolated_axes += [a for a in other.extrapolated_axes if a not in self.extrapolated_axes]


def power_law(x0: float, y0: float, x1: float, y1: float, x: float) -> float:
    if x0 == x1 or y0 <= 0 or y1 <= 0:
        return y0 + (y1 - y0) * ((x - x0) / (x1 - x0) if x1 != x0 else 0.0)
    t = (math.log(x) - math.log(x0)) / (math.log(x1) - math.log(x0))
    return math.exp(math.log(y0) + t * (math.log(y1) - math.log(y0)))


class Grid:
    """Rows (key tuple, value) over named axes; `at(query)` interpolates axis by axis, first axis outermost."""

    def __init__(self, axes: tuple[str, ...], rows, above_exponents: dict[str, float]):
        self.axes, self.exponents = axes, above_exponents
        self.tree: dict = {}
        for key, value in rows:
            node = self.tree
            for k in key[:-1]:
                node = node.setdefault(k, {})
            node.setdefault(key[-1], []).append(value)
        self._sorted: dict[int, list] = {}

    def __len__(self) -> int:
        return len(self.tree)

    def at(self, query: tuple) -> Lookup:
        return self._at(self.tree, 0, query)

    def _at(self, node: dict, depth: int, query: tuple) -> Lookup:
        axis, q = self.axes[depth], query[depth]
        keys = self._sorted.get(id(node))
        if keys is None:
            keys = self._sorted[id(node)] = sorted(node)
        leaf = depth == len(self.axes) - 1
        get = (lambda k: Lookup(sorted(node[k])[len(node[k]) // 2])) if leaf \
            else (lambda k: self._at(node[k], depth + 1, query))    # repeated rows: their median
        i = bisect.bisect_left(keys, q)
        if i < len(keys) and keys[i] == q:
            return get(q)
        if i == 0:                                   # below the grid: the smallest point's time
            out = get(keys[0])
            out.merge(Lookup(0.0, EXTRAPOLATED, [f"{axis}<{keys[0]}"]))
            return out
        if i == len(keys):                           # above the grid: scale by the axis's exponent
            top = get(keys[-1])
            e = self.exponents.get(axis, 1.0)
            out = Lookup(top.value * (q / keys[-1]) ** e, top.how, top.extrapolated_axes)
            out.merge(Lookup(0.0, EXTRAPOLATED, [f"{axis}>{keys[-1]}"]))
            return out
        lo, hi = get(keys[i - 1]), get(keys[i])
        out = Lookup(power_law(keys[i - 1], lo.value, keys[i], hi.value, q), INTERPOLATED)
        out.merge(lo)
        out.merge(hi)
        return out
