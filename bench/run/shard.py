"""Shards: `python -m bench run --sweep S --shard K/N` measures shard K (0-based) of N, a deterministic subset of
the sweep's points balanced by theory's predicted work (bench/launch/budget.py point_work_s).

Every box must compute the same split without talking to the others, so the work is predicted on one fixed
reference spec (REFERENCE_HARDWARE), never on the box's own ceilings: only the ratios between points matter. Points
are dealt largest first to the least-loaded shard (ties: the lower shard; equal work: the lower point id), so the
split depends only on the sweep file and the device kind (which resolves dtype `auto`). The shard's point ids are
recorded in run.json (`shard`), and a resume or an isolated child reads them from there (bench/sweep.py
load_run_sweep), so a resume measures exactly the points it started with.

A Slurm job array is one line: `--shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT` with `--array=0-(N-1)`.
"""
from bench.launch.budget import point_work_s
from theory.errors import TheoryError
from theory.hardware import load_hardware

REFERENCE_HARDWARE = "h100-sxm-80gb"     # the same on every box; a CPU box's split uses it too (ratios only)


def parse_shard(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        k, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard takes K/N (shard K of N, K from 0), e.g. 0/4; got {text!r}") from None
    if n < 1 or not 0 <= k < n:
        raise ValueError(f"--shard {text}: K must be in 0..{max(n - 1, 0)} (0-based: with Slurm use --array=0-{n - 1})"
                         if n >= 1 else f"--shard {text}: N must be at least 1")
    return k, n


def predicted_work_s(sweep, device_kind: str) -> list[float]:
    """Each point's predicted seconds of measurement on the reference spec; a point theory cannot predict counts
    as the largest predicted one (a conservative share)."""
    hw = load_hardware(REFERENCE_HARDWARE)
    out: list[float | None] = []
    for p in sweep.points:
        try:
            out.append(point_work_s(p, sweep.repeats, sweep.warmup_s, hw, device_kind))
        except TheoryError:
            out.append(None)
    known = [w for w in out if w is not None]
    fallback = max(known) if known else 1.0
    return [fallback if w is None else w for w in out]


def split(sweep, device_kind: str, n: int) -> list[list[str]]:
    """The sweep's point ids in n shards (each in sweep order), balanced by predicted work (LPT)."""
    ids = [p.point_id(device_kind) for p in sweep.points]
    work = predicted_work_s(sweep, device_kind)
    load, members = [0.0] * n, [set() for _ in range(n)]
    for w, pid in sorted(zip(work, ids), key=lambda t: (-t[0], t[1])):
        k = min(range(n), key=lambda j: (load[j], j))
        load[k] += w
        members[k].add(pid)
    return [[pid for pid in ids if pid in m] for m in members]


def shard_record(sweep, device_kind: str, k: int, n: int) -> dict:
    """run.json's `shard`: which shard, of how many, its point ids, and the predicted work behind the split."""
    parts = split(sweep, device_kind, n)
    work = dict(zip((p.point_id(device_kind) for p in sweep.points), predicted_work_s(sweep, device_kind)))
    return {"index": k, "count": n, "point_ids": parts[k], "sweep_points": len(sweep.points),
            "predicted_work_s": round(sum(work[pid] for pid in parts[k]), 6),
            "balanced_by": f"theory's predicted work per point on {REFERENCE_HARDWARE} (bench/launch/budget.py)"}

