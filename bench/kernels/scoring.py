"""How a `versus` try is read (bench/kernels/versus.py): the measured TTFT and TPOT of its timed trajectories, the
box's drift over the try from its kernel rounds, each trajectory as its own A-B-A, and the settling trajectories
against the timed ones. Pure Python over the pass times and theory's answers."""
import statistics

DRIFT_BOUND_REL = 0.05      # issue 21: a try counts when the box's drift over it is within ±5%


def measured(runs: list[list[float]]) -> dict:
    """TTFT: the median prefill; TPOT: the mean over decode steps of each step's median over the repeats, as
    `bench run` reads a step (bench/point/rows.py: a step's time is its median over the trajectories). Each with its
    range over the repeats; the median of the trajectories' own mean steps is kept beside it
    (`measured_tpot_trajectory_median_s`, the TPOT of the sets before 2026-12-04 night).

    Why the step's median: on this box a slow burst mostly covers a few steps of one trajectory (d=1280 L=12, 20
    back-to-back trajectories: steps 58.5-89.3 ms while the fastest step of 19 of them stayed 58.5-62.7 ms,
    results/never-built-interleaved-20261202/diagnosis/trajectory-noise), and the kernels the prediction sums are
    medians over rounds, which pass over such bursts; a trajectory's mean does not. Every trajectory must hold the
    same passes (prefill, then generated - 1 decode steps)."""
    if len({len(r) for r in runs}) != 1:
        raise ValueError(f"trajectories of {sorted({len(r) for r in runs})} passes: each step's median needs the same "
                         f"passes in every trajectory")
    ttfts = [r[0] for r in runs]
    tpots = [statistics.fmean(r[1:]) for r in runs]
    steps = [statistics.median(r[i] for r in runs) for i in range(1, len(runs[0]))]
    return {"measured_ttft_s": statistics.median(ttfts), "measured_ttft_range_s": [min(ttfts), max(ttfts)],
            "measured_tpot_s": statistics.fmean(steps), "measured_tpot_range_s": [min(tpots), max(tpots)],
            "measured_tpot_trajectory_median_s": statistics.median(tpots), "measured_tpot_step_median_s": steps}


def settle_summary(settle_runs: list[list[list[float]]], runs: list[list[float]]) -> dict:
    """The settling trajectories (run after each gap's rounds, not scored) against the timed one after them: per gap,
    the first settling trajectory's TPOT and TTFT over the timed one's, and the median over gaps."""
    per_gap = []
    for settles, timed in zip(settle_runs, runs):
        if settles:
            s = settles[0]
            per_gap.append({"tpot_over_timed": statistics.fmean(s[1:]) / statistics.fmean(timed[1:]),
                            "ttft_over_timed": s[0] / timed[0]})
    if not per_gap:
        return {"per_gap": 0}
    return {"per_gap": len(settle_runs[0]), "gaps": per_gap,
            "median_tpot_over_timed": statistics.median(g["tpot_over_timed"] for g in per_gap),
            "median_ttft_over_timed": statistics.median(g["ttft_over_timed"] for g in per_gap)}


def drift_summary(pooled: dict, first: dict, last: dict) -> dict:
    """How far the box moved over the try, in the units a user reads: the target predicted from the last gap's
    kernel rounds against the first gap's (A-B-A: issue 21 item 4, "how far the box moved between them"), TPOT and
    TTFT; a try is within the bound when both moved at most DRIFT_BOUND_REL. Each gap's prediction against the
    pooled one is kept beside it."""
    key_t, key_f = "time_per_output_token_s", "time_to_first_token_s"
    tpot_moved, ttft_moved = last[key_t] / first[key_t] - 1, last[key_f] / first[key_f] - 1
    return {"first_gap_tpot_over_pooled": first[key_t] / pooled[key_t] - 1,
            "last_gap_tpot_over_pooled": last[key_t] / pooled[key_t] - 1,
            "box_moved_first_to_last_tpot": tpot_moved, "box_moved_first_to_last_ttft": ttft_moved,
            "drift_bound_rel": DRIFT_BOUND_REL,
            "within_drift_bound": max(abs(tpot_moved), abs(ttft_moved)) <= DRIFT_BOUND_REL}


def per_trajectory(runs: list[list[float]], each_gap: list[dict], around: list[dict]) -> list[dict]:
    """Each trajectory as its own A-B-A: its prefill (TTFT) and mean decode step (TPOT) against the target predicted
    from the two gaps' rounds around it, and how far the box moved from the gap before it to the gap after it.
    each_gap / around: request()'s answers for every gap's calibration and for each trajectory's two gaps'."""
    key_t, key_f = "time_per_output_token_s", "time_to_first_token_s"
    out = []
    for i, r in enumerate(runs):
        before, after, both = each_gap[i], each_gap[i + 1], around[i]
        ttft, tpot = r[0], statistics.fmean(r[1:])
        moved_t, moved_f = after[key_t] / before[key_t] - 1, after[key_f] / before[key_f] - 1
        out.append({"trajectory": i + 1, "measured_ttft_s": ttft, "measured_tpot_s": tpot,
                    "predicted_ttft_s": both[key_f], "predicted_tpot_s": both[key_t],
                    "ttft_error": ttft / both[key_f] - 1, "tpot_error": tpot / both[key_t] - 1,
                    "box_moved_tpot": moved_t, "box_moved_ttft": moved_f,
                    "within_drift_bound": max(abs(moved_t), abs(moved_f)) <= DRIFT_BOUND_REL})
    return out
