"""`bench kvmem`'s result: per-step rows from a replayed trace, slopes per token, the staircase, causes with bytes,
a table and a figure. Torch-free."""
from theory.dtypes import dtype_bytes
from theory.kvrun import kv_as_run, staircase, step_states

TRACE_KEY = "_trace"


def slope(x: list[float], y: list[float]) -> float | None:
    """Least-squares slope (None with fewer than two distinct x)."""
    n = len(x)
    if n < 2 or min(x) == max(x):
        return None
    mx, my = sum(x) / n, sum(y) / n
    return sum((a - mx) * (b - my) for a, b in zip(x, y)) / sum((a - mx) ** 2 for a in x)


def summarize(p, point_id: str, device: str, dtype: str, weight_bytes: int, trace: list[dict], kv: list[int],
              measured: list[dict] | None) -> dict:
    states = step_states(trace)
    by_key = {(s["phase"], s["step"]): s for s in states}
    base = by_key.get(("weights", -1), {"requested_bytes": 0, "allocated_bytes": 0, "reserved_bytes": 0})
    rows, last = [], base
    for i, tensor in enumerate(kv):
        key = ("prefill", 0) if i == 0 else ("decode", i - 1)
        s = last = by_key.get(key, last)
        row = {"phase": key[0], "step": key[1], "tokens": p.prompt_len + i, "tensor_bytes": tensor,
               "requested_bytes": s["requested_bytes"], "allocated_bytes": s["allocated_bytes"],
               "reserved_bytes": s["reserved_bytes"], "peak_reserved_bytes": s.get("peak_reserved_bytes"),
               "reserved_source": "predicted (replay)"}
        if measured is not None:
            row["measured_allocated_bytes"] = measured[i]["allocated_bytes"]
            row["measured_reserved_bytes"] = measured[i]["reserved_bytes"]
        rows.append(row)
    dec = [r for r in rows if r["phase"] == "decode"] or rows
    t = [r["tokens"] for r in dec]
    per_token = {k: slope(t, [r[k] for r in dec]) for k in ("tensor_bytes", "requested_bytes", "allocated_bytes",
                                                            "reserved_bytes")}
    if measured is not None:
        per_token["measured_reserved_bytes"] = slope(t, [r["measured_reserved_bytes"] for r in dec])
    spec = p.spec()
    end = rows[-1]
    causes = {   # at the last step; growth per token in the same terms
        "kv_tensor_bytes": end["tensor_bytes"],
        "other_live_bytes": end["requested_bytes"] - end["tensor_bytes"] - base["requested_bytes"],
        "rounding_bytes": end["allocated_bytes"] - end["requested_bytes"],
        "free_in_segments_bytes": end["reserved_bytes"] - end["allocated_bytes"],
        "rounding_bytes_per_token": slope(t, [r["allocated_bytes"] - r["requested_bytes"] for r in dec]),
        "free_in_segments_bytes_per_token": slope(t, [r["reserved_bytes"] - r["allocated_bytes"] for r in dec]),
        "definitions": "rounding: blocks' 512 B rounding (allocated − requested); free in segments: reserved − "
                       "allocated, the cached blocks of older sizes and the unused rest of 2/20 MiB segments "
                       "(fragmentation and segment granularity)"}
    L, d = spec.num_hidden_layers, spec.hidden_size
    floor = kv_as_run(spec, p.batch, end["tokens"], dtype, p.cache, p.max_cache_len)
    return {"point_id": point_id, "label": p.label(), "device": device, "dtype": dtype, "batch": p.batch,
            "prompt_len": p.prompt_len, "generated": p.generated, "cache": p.cache, "weight_bytes": weight_bytes,
            "trace_events": len(trace), "steps": rows, "per_token": per_token,
            "theory_bytes_per_token": 2 * L * spec.num_key_value_heads * spec.head_dim * dtype_bytes(dtype) * p.batch,
            "naive_4Ld_bytes_per_token": 4 * L * d * p.batch,
            "staircase_predicted": staircase(t, [r["reserved_bytes"] for r in dec]),
            **({"staircase_measured": staircase(t, [r["measured_reserved_bytes"] for r in dec])}
               if measured is not None else {}),
            "causes": causes, "allocator_floor": floor, TRACE_KEY: trace}


def _mb(v) -> str:
    return "" if v is None else f"{v / 1e6:.3f}"


def render_table(out: dict) -> str:
    cuda = "measured_reserved_bytes" in out["steps"][0]
    lines = [f"{out['label']} on {out['device']} ({out['dtype']}): {out['trace_events']} allocator events replayed",
             "", f"{'phase':<8}{'step':>5}{'tokens':>7}{'tensors MB':>12}{'allocated MB':>14}{'reserved MB':>13}"
             + (f"{'measured res. MB':>18}" if cuda else "") + "   (allocated, reserved: predicted for CUDA)"]
    for r in out["steps"]:
        lines.append(f"{r['phase']:<8}{r['step']:>5}{r['tokens']:>7}{_mb(r['tensor_bytes']):>12}"
                     f"{_mb(r['allocated_bytes']):>14}{_mb(r['reserved_bytes']):>13}"
                     + (f"{_mb(r['measured_reserved_bytes']):>18}" if cuda else ""))
    pt, sc, c = out["per_token"], out["staircase_predicted"], out["causes"]
    f = lambda v: "n/a" if v is None else f"{v:,.0f}"                              # noqa: E731
    lines += ["", f"per token (decode slope, B/token): tensors {f(pt['tensor_bytes'])}, allocated "
              f"{f(pt['allocated_bytes'])}, reserved {f(pt['reserved_bytes'])} (predicted)"
              + (f", reserved {f(pt['measured_reserved_bytes'])} (measured)" if cuda else "")
              + f"; theory {f(out['theory_bytes_per_token'])}, naive 4·L·d {f(out['naive_4Ld_bytes_per_token'])}",
              f"staircase (predicted reserved): {sc['jumps']} jumps, median {f(sc['median_jump_bytes'])} B every "
              f"{f(sc['median_period_tokens'])} tokens, {f(sc['growth_bytes_per_token'])} B/token overall",
              f"at the last step: KV tensors {_mb(c['kv_tensor_bytes'])} MB, other live {_mb(c['other_live_bytes'])} MB, "
              f"rounding {_mb(c['rounding_bytes'])} MB, free in segments {_mb(c['free_in_segments_bytes'])} MB "
              f"(per token: rounding {f(c['rounding_bytes_per_token'])}, free in segments "
              f"{f(c['free_in_segments_bytes_per_token'])})",
              f"allocator floor for the cache alone (live tensors packed fresh): "
              f"{_mb(out['allocator_floor']['reserved_bytes'])} MB reserved for {_mb(out['allocator_floor']['ideal_bytes'])} MB"]
    return "\n".join(lines)


def staircase_figure(out: dict, path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = out["steps"]
    t = [r["tokens"] for r in rows]
    base = rows[0]["reserved_bytes"] - rows[0]["tensor_bytes"]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    ax.plot(t, [(r["tensor_bytes"]) / 1e6 for r in rows], label="KV cache tensors")
    abase = rows[0]["allocated_bytes"] - rows[0]["tensor_bytes"]
    ax.plot(t, [(r["allocated_bytes"] - abase) / 1e6 for r in rows], label="allocated (predicted), less step-0 offset")
    ax.step(t, [(r["reserved_bytes"] - base) / 1e6 for r in rows], where="post",
            label="reserved (predicted for CUDA), less step-0 offset")
    if "measured_reserved_bytes" in rows[0]:
        mbase = rows[0]["measured_reserved_bytes"] - rows[0]["tensor_bytes"]
        ax.step(t, [(r["measured_reserved_bytes"] - mbase) / 1e6 for r in rows], where="post", label="reserved (measured)")
    ax.set_xlabel("tokens in cache")
    ax.set_ylabel("MB (offset: weights and step-0 rest removed)")
    ax.set_title(out["label"], fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)
