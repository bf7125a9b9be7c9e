"""An op's kernel time at a size a calibration lacks, kept within its kernel regime and interpolated over the
variables that set the kernel's rate (issue 21).

Regime: a decode pass runs its linears as matrix-vector products (a few tokens per pass: the batch) and its
attention core over one query; a prefill runs matrix-matrix products over batch × prompt tokens. They are
different kernels with different achieved rates (interpolating a decode linear toward prefill matmuls came out
1.14-2.23x too fast), so an instance is only interpolated from instances of the same phase; when the
calibration holds none, the other phase's are used and the op is marked `extrapolated` with `regime_crossed`.
Linears are the exception between calibrated sizes (pools_phases): their first size variable, the tokens per pass,
already tells the two apart, and decode at batch 64 runs the very matmul a 64-token prefill runs. They pool only
where the calibration holds their own phase too, and only where pooling reaches no further beyond the calibrated
sizes than their own phase's instances do.

Size, per kernel class (one kernel runs every op of a class, so a class pools its ops' instances):
- linear (q/k/v/o, gate/up/down, fc_in/out, lm_head, router, …): (m, n·k) = tokens per pass and weight elements;
- attention core pieces (attn_core, attn_scores, attn_values, attn_softmax): (query × keys × head_dim of one
  problem, problems = batch × query heads). The kernel runs one (query × keys) problem per batch row and head, and
  its rate is set by the problem's size: on the same box one 1024 × 1024 problem per head ran at 2.9 ns per score
  and 64 batches of 64 × 64 at 10.1 ns (20261202T190336Z, prefill). Sized by their product alone (batch × heads ×
  query × keys, before 2026-12-02 20:00), holding out the T=1024 prefill extrapolated from batch 64's rate and
  read its attention 3.5x too slow;
- norms (input, post-attention, final: one `norm` class) by bytes moved; everything else (rotary, act·mul, adds, cache update, embedding, repeat_kv): (bytes moved, 1).
A linear's row length k (its reduction dimension) moves its time at one (m, n·k) too: gate/up (k = d) and down
(k = the intermediate size) hold the same weights, and in each calibration model, in the same rounds, down ran
8-24% faster per weight element at m = 1 (medians 15% at d=1536, 12% at d=2560; twelve tries of 2026-12-03). Pooled by (m, n·k)
alone they were averaged. So within each m the instances are first moved to the target's row length by
time ∝ k^β, β fitted over that m's instances (row_exponent: least squares with the weight size, clipped to
[−1, 0]; on this box β ≈ −0.17 at m = 1, ≈ −0.04 at m = 128), then interpolated along n·k as below. Where the
instances cannot tell k from n·k, β = 0 and nothing moves. This was chosen after the split of twelve scored tries
(against.py) showed the unseen d=1280 model's linears (k = 1280, below every calibrated k) 1-10% slower than
predicted: those tries are no score for it; new sets are (results/README.md).
Inside the calibrated sizes the time is piecewise linear in log-log, first along the second variable within each
calibrated value of the first, then along the first. Below the smallest calibrated size it follows the local
log-log slope of the two smallest, clipped to [0, 1] (time never falls with size, and never grows faster than the
work). Above the largest it keeps the largest size's achieved rate (time grows with the work; not along a
decode linear's tokens per pass, where the clipped local slope stays: rate_above_in_x0): the local slope
between two sizes that are still overhead-bound is flat, and carried upward it made large instances far too fast
(batch-64 decode from batch 16: attention core −51%, cache update −81%, norms −53%, 20261202T111615Z; scored on
every committed run in docs/calibration.md). How far beyond is kept as a ratio (target / nearest calibrated size,
≥ 1, the largest over both variables; 1.0 inside).
"""
import math
from dataclasses import dataclass

from theory.dtypes import dtype_bytes
from theory.ops import OPS, SOFTMAX_FLOPS_PER_SCORE, OpCount

CALIBRATED, INTERPOLATED, EXTRAPOLATED = "calibrated", "interpolated", "extrapolated"
SAME_REL = 1e-9
ATTENTION_CORE = ("attn_core", "attn_scores", "attn_values", "attn_softmax")
LINEAR, NORM = "linear", "norm"
NORMS = ("input_norm", "post_attention_norm", "final_norm")       # one RMSNorm kernel


def kernel_class(op: str) -> str:
    """The kernel an op runs: every matmul outside the attention core is one `linear` class; others their own."""
    if op in ATTENTION_CORE:
        return op
    if op in NORMS:
        return NORM
    return LINEAR if OPS.get(op, ("", False))[1] else op


# The size basis of op_size. A calibration file records the sizes it was written with; sized() recomputes those of
# another basis (1: attention by batch × heads × query × keys and head_dim; 2: by one problem and the problems;
# 3: as 2, and each linear's row length k as `row_len`).
SIZE_BASIS = 3


def row_length(row: OpCount) -> float:
    """A linear's row length k (the reduction dimension: d for q/k/v/gate/up, the intermediate size for down); 0.0
    for any other op, or a row merging linears of different k (no row correction then)."""
    return float(row.k_in) if kernel_class(row.name) == LINEAR else 0.0


def op_size(row: OpCount, head_dim: int, dtype: str, problems: int = 1) -> tuple[float, float]:
    """The variables that set one instance's kernel rate (module docstring), from theory's op table row.
    problems: the attention core's (query × keys) problems per instance, batch × query heads."""
    cls = kernel_class(row.name)
    if cls == LINEAR:
        nk = row.weight_bytes / row.count / dtype_bytes(dtype)
        return row.flops / row.count / (2 * nk) if nk else 0.0, nk        # 2·m·n·k FLOPs (bias ignored)
    per_score = {"attn_core": 4 * head_dim + SOFTMAX_FLOPS_PER_SCORE, "attn_scores": 2 * head_dim,
                 "attn_values": 2 * head_dim, "attn_softmax": SOFTMAX_FLOPS_PER_SCORE}.get(cls)
    if per_score is not None:
        problems = max(1, problems)
        scores = row.flops / row.count / per_score                       # batch × heads × query × keys
        return scores / problems * head_dim, float(problems)
    return row.bytes / row.count, 1.0


@dataclass(frozen=True)
class Sized:
    """One calibrated instance: its regime (the pass's phase), size (x0, x1) and kernel time (median or bound)."""
    regime: str
    x0: float
    x1: float
    time_s: float
    tag: str = ""            # which workload it came from (for leave-one-out within a calibration)
    k: float = 0.0           # a linear's row length (row_length); 0.0: none recorded


@dataclass(frozen=True)
class Estimate:
    time_s: float
    status: str
    extrapolation_ratio: float      # 1.0 inside the calibrated sizes
    regime_crossed: bool


def _same(a: float, b: float) -> bool:
    return abs(a - b) <= SAME_REL * max(abs(a), abs(b))


def _along(pts: list[tuple[float, float]], x: float, rate_above: bool = True) -> tuple[float, float, bool]:
    """Time at x from (x, time) points: piecewise log-log inside; the clipped local slope below; above, the largest
    size's rate (rate_above) or else the clipped local slope too.
    Returns (time, extrapolation ratio ≥ 1, exact hit)."""
    merged: list[list] = []
    for px, t in sorted(p for p in pts if p[0] > 0 and p[1] > 0):
        if merged and _same(px, merged[-1][0]):
            merged[-1][1].append(t)
        else:
            merged.append([px, [t]])
    pts = [(px, sum(ts) / len(ts)) for px, ts in merged]
    if not pts:
        raise ValueError("no calibrated instance with a positive size")
    if x <= 0:
        return pts[0][1], 1.0, False
    for px, t in pts:
        if _same(px, x):
            return t, 1.0, True
    slope = lambda a, b: min(1.0, max(0.0, math.log(b[1] / a[1]) / math.log(b[0] / a[0])))
    if x < pts[0][0] or x > pts[-1][0]:
        end, nxt = (pts[0], pts[1] if len(pts) > 1 else None) if x < pts[0][0] else \
                   (pts[-1], pts[-2] if len(pts) > 1 else None)
        s = 1.0 if nxt is None or (rate_above and x > end[0]) else slope(*sorted((end, nxt)))
        return end[1] * (x / end[0]) ** s, max(x / end[0], end[0] / x), False
    for a, b in zip(pts, pts[1:]):
        if a[0] < x < b[0]:
            s = math.log(b[1] / a[1]) / math.log(b[0] / a[0])
            return a[1] * (x / a[0]) ** s, 1.0, False
    raise AssertionError("unreachable: x inside the calibrated range")


def rate_above_in_x0(cls: str, regime: str) -> bool:
    """Does an instance above the calibrated sizes of the first variable keep the largest one's rate? Not for a
    decode linear: its first variable is the tokens per pass m, and a matrix-vector product's time is set by its
    weights (the second variable), growing far slower than m (decode at m = 1, 4, 16 can read 1.0, 1.05, 1.2 ms);
    there the clipped local slope stays. A prefill linear is a matrix product over many tokens, whose time grows
    with m; every other class's first variable is its work (bytes moved, or batch × heads × query × keys read),
    whose time grows with it once the overhead is paid."""
    return cls != LINEAR or regime != "decode"


def pools_phases(cls: str) -> bool:
    """A linear is F.linear over (m, k) × (k, n) whichever pass runs it: its first size variable, the tokens per
    pass m, already tells a matrix-vector product (m = the batch, in decode) from a matrix product, and the same m
    can come from either phase (decode at batch 64 runs the kernel a 64-token prefill runs). So between calibrated
    sizes a linear is interpolated over both phases' instances; beyond them, from its own phase's only (the rate
    is not carried from one phase's sizes past the other's)."""
    return cls == LINEAR


def _inside(instances: list[Sized], x0: float) -> bool:
    xs = [i.x0 for i in instances if i.x0 > 0]
    return bool(xs) and (min(xs) <= x0 <= max(xs) or any(_same(x, x0) for x in xs))


def estimate(instances: list[Sized], regime: str, x0: float, x1: float, pool_phases: bool = False,
             x0_rate_above: bool = True, k: float = 0.0) -> Estimate:
    """Kernel time at size (x0, x1) in `regime` from calibrated instances of the same kernel class.
    pool_phases (pools_phases'): where the calibration holds instances of this regime and x0 lies within every
    phase's first-variable range, every phase's instances are used, unless that would reach further beyond the
    calibrated sizes (a larger extrapolation ratio) than this regime's own instances do.
    k: the target's row length (a linear's; row_correction), 0.0 for none."""
    same = [i for i in instances if i.regime == regime]
    if not same:
        return _from(list(instances), x0, x1, crossed=True, x0_rate_above=x0_rate_above, k=k)
    own = _from(same, x0, x1, crossed=False, x0_rate_above=x0_rate_above, k=k)
    if pool_phases and len(same) < len(instances) and _inside(instances, x0):
        pooled = _from(list(instances), x0, x1, crossed=False, x0_rate_above=x0_rate_above, k=k)
        if pooled.extrapolation_ratio <= own.extrapolation_ratio:
            return pooled
    return own


def row_exponent(members: list[Sized]) -> float:
    """β in time ∝ x1 · k^β · (a power of x1), least squares over instances of one first-variable value (one m):
    how a linear's time per weight element moves with its row length at a given weight size. Clipped to [−1, 0]:
    a longer row never costs more per element (the per-output work is spread over more of it), and time never falls
    as rows lengthen at fixed outputs. 0.0 (no correction) without three instances of at least two row lengths
    and two weight sizes, or when the two cannot be told apart (one row length per weight size, collinear)."""
    pts = [(math.log(m.k), math.log(m.x1), math.log(m.time_s / m.x1)) for m in members
           if m.k > 0 and m.x1 > 0 and m.time_s > 0]
    if len(pts) < 3 or len({round(a, 9) for a, _, _ in pts}) < 2 or len({round(b, 9) for _, b, _ in pts}) < 2:
        return 0.0
    n = len(pts)
    ma, mb, my = (sum(p[i] for p in pts) / n for i in range(3))
    saa = sum((a - ma) ** 2 for a, _, _ in pts)
    sbb = sum((b - mb) ** 2 for _, b, _ in pts)
    sab = sum((a - ma) * (b - mb) for a, b, _ in pts)
    say = sum((a - ma) * (y - my) for a, _, y in pts)
    sby = sum((b - mb) * (y - my) for _, b, y in pts)
    det = saa * sbb - sab * sab
    if det <= 1e-12 * max(saa * sbb, 1e-300):
        return 0.0
    return min(0.0, max(-1.0, (say * sbb - sby * sab) / det))


def _row_corrected(members: list[Sized], k: float) -> list[tuple[float, float, bool]]:
    """(x1, time, same row length as k) per instance, each time moved to row length k by row_exponent's β."""
    beta = row_exponent(members) if k > 0 else 0.0
    return [(m.x1, m.time_s * (k / m.k) ** beta if beta and m.k > 0 else m.time_s, k <= 0 or m.k <= 0 or _same(m.k, k))
            for m in members]


def _from(pool: list[Sized], x0: float, x1: float, crossed: bool, x0_rate_above: bool = True,
          k: float = 0.0) -> Estimate:
    if not pool:
        raise ValueError("no calibrated instance")
    groups: list[tuple[float, list[Sized]]] = []          # instances of one first-variable value, by that value
    for i in sorted(pool, key=lambda i: i.x0):
        if groups and _same(groups[-1][0], i.x0):
            groups[-1][1].append(i)
        else:
            groups.append((i.x0, [i]))
    per_x0 = []
    for g, members in groups:
        moved = _row_corrected(members, k)
        t, r, hit = _along([(a, b) for a, b, _ in moved], x1)
        hit = hit and any(same_k and _same(a, x1) for a, _, same_k in moved)     # the very shape, row length too
        per_x0.append((g, t, r, hit))
    t, r0, hit0 = _along([(g, t) for g, t, _, _ in per_x0], x0, x0_rate_above)
    used = [p for p in per_x0 if _same(p[0], x0)] if hit0 else _neighbours(per_x0, x0)
    ratio = max([r0] + [p[2] for p in used])
    exact = hit0 and all(p[3] for p in used)
    status = EXTRAPOLATED if crossed or ratio > 1.0 else CALIBRATED if exact else INTERPOLATED
    return Estimate(t, status, ratio, crossed)


def _neighbours(per_x0: list, x0: float) -> list:
    """The calibrated first-variable groups an estimate at x0 rests on: the two around it, or the nearest."""
    below = [p for p in per_x0 if p[0] < x0]
    above = [p for p in per_x0 if p[0] > x0]
    out = ([max(below, key=lambda p: p[0])] if below else []) + ([min(above, key=lambda p: p[0])] if above else [])
    return out
