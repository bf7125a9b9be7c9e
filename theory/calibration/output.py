"""The calibrated prediction as JSON and as a table: the same stable keys as the roofline's (`time_s`, `flops`,
`bytes`, capacity, `fits`, `assumptions`, `warnings`, `groups`, `ops`, ...), with kernel times from the calibration.

Capacity needs the device's memory, which `bench kernels` records in the calibration (`memory_capacity_bytes`);
an older calibration without it gets null capacity figures and a warning saying so."""
from theory.calibration.predict import PassPrediction, pass_workload
from theory.capacity import capacity_json, check_positions
from theory.hardware import HardwareSpec
from theory.model import ModelSpec
from theory.ops import OP_GROUPS

CAPACITY_KEYS = ("fits", "fits_reason", "usable_memory_bytes", "memory_capacity_bytes", "max_batch_at_context",
                 "max_context_at_batch")
NO_MEMORY = ("the calibration records no device memory (written before bench kernels stored it): fits and capacity "
             "are not computed; run `python -m bench kernels` again for them")


def memory_spec(cal: dict) -> HardwareSpec | None:
    """The calibration's device as far as capacity needs it (its memory; no peaks: times come from kernels)."""
    mem = cal.get("memory_capacity_bytes")
    if not isinstance(mem, int) or isinstance(mem, bool) or mem <= 0:
        return None
    kind = "cpu" if cal.get("device") == "cpu" else "gpu"
    return HardwareSpec(id="calibration", name=str(cal.get("device_name")), peak_flops_per_s={},
                        memory_bandwidth_bytes_per_s=0.0, memory_capacity_bytes=mem, kind=kind,
                        usable_memory_bytes=mem if kind == "gpu" else None,
                        usable_memory_source="torch.cuda total memory, recorded by bench kernels" if kind == "gpu" else "")


def calibrated_json(cal: dict, model: ModelSpec, a, p: PassPrediction, tokens: int, prompt: int,
                    max_cache_len: int | None) -> dict:
    """a: the parsed theory CLI arguments (phase, batch, reserve_fraction, hardware path)."""
    decode = a.phase == "decode"
    w = pass_workload(cal, model, a.phase, a.batch, prompt, tokens if decode else 0, max_cache_len)
    check_positions(model, w.context_len + w.query_tokens)
    hw = memory_spec(cal)
    assumptions = [f"times from kernels measured by bench ({cal.get('threads')} thread(s), {cal.get('cache_state')}; "
                   f"{cal['attention']} attention, {cal['cache']} cache): the pass as run, not the ideal"]
    if hw is not None:
        cap = capacity_json(model, hw, w, a.reserve_fraction, 1, assumptions)
    else:                       # everything but the memory figures still holds
        cap = capacity_json(model, HardwareSpec("calibration", "", {}, 0.0, 1), w, a.reserve_fraction, 1, assumptions)
        cap.update(dict.fromkeys(CAPACITY_KEYS))
        cap["warnings"].insert(0, NO_MEMORY)
    groups = {g: {"time_s": 0.0} for g in OP_GROUPS if g != "comms"}
    for o in p.ops.values():
        groups[o["group"]]["time_s"] += o["time_s"]
    groups["other"]["time_s"] += p.framework_s + p.residual_s    # the framework's own cost and the full-size
                                                                  # models' residual: no op of the model's
    batch_tokens = a.batch * (tokens if not decode else 1)
    return {**cap, "model": model.name, "hardware": cal.get("device_name"), "source": "kernel calibration",
            "calibration": a.hardware, "phase": a.phase, "batch": a.batch,
            "prompt_len": w.prompt_len, "context_len": w.context_len, "dtype": cal["dtype"],
            "kv_dtype": cal["dtype"], "attention": w.attention, "kv_update": w.kv_update, "logits": w.logits,
            "mode": "kernels", "tp": 1, "cache_state": cal.get("cache_state"),
            "time_s": p.time_s, "framework_s": p.framework_s, "residual_s": p.residual_s,
            "flops": sum(o["flops"] for o in p.ops.values()), "bytes": sum(o["bytes"] for o in p.ops.values()),
            "tokens_per_s": batch_tokens / p.time_s if p.time_s else None,
            "critical_batch": None,           # a calibration holds kernel times at its sizes, no peak or bandwidth
            "status": p.status, "extrapolated": p.extrapolated, "interpolated": p.interpolated,
            "groups": groups,
            "ops": [{"name": op, **o, "bound": "measured"} for op, o in p.ops.items()]}


def _table(header: list[str], rows: list[list[str]], left: tuple = (0,)) -> list[str]:
    """Columns as wide as their widest cell, two spaces apart: wide numbers never run together. Columns in
    `left` are text (left-aligned), the others numbers (right-aligned)."""
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    fmt = lambda r: "  ".join(c.ljust(wd) if i in left else c.rjust(wd) for i, (c, wd) in enumerate(zip(r, widths)))
    return [fmt(header).rstrip()] + [fmt(r).rstrip() for r in rows]


def _bytes(n: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3f} {unit}"
    return f"{n:.0f} B"


HELD = {"slope": " (per-instance part held at 0: the deeper calibrated passes read less framework, so every depth "
                 "gets their mean)",
        "fixed": " (fixed part held at 0: the line through the calibrated depths fell below 0 ms at 0 instances)"}


def calibrated_table(out: dict, p: PassPrediction, cal: dict) -> list[str]:
    where = (f"prompt {out['prompt_len']} tokens" if out["phase"] == "prefill"
             else f"context {out['context_len']} tokens")
    lines = [] if out.get("fits", True) in (True, None) else [f"INFEASIBLE: {out['model']} {out['fits_reason']}"]
    lines += [f"{out['model']} on {out['hardware']} (kernels measured by bench, {cal.get('threads')} thread(s), "
              f"{cal.get('cache_state')}): {out['phase']}, batch {out['batch']}, {where}, {out['dtype']}  [{p.status}]", ""]
    rows = [[op, str(o["count"]), f"{o['kernel_s'] * 1e6:,.1f}", f"{o['time_s'] * 1e3:,.4f}",
             f"{o['time_s'] / p.time_s:.1%}", o["status"], f"x{o['extrapolation_ratio']:.2f}",
             ("yes" if o["own_shape_calibrated"] else "no") + (" (other phase)" if o["regime_crossed"] else "")]
            for op, o in p.ops.items()]
    fw = p.framework
    fw_how = (f"fixed {fw['fixed_s'] * 1e3:.3f} ms + {fw['per_instance_s'] * 1e6:.2f} µs per op instance, fitted over "
              f"{fw['depths']} depths" if not fw["one_depth"] else
              f"{fw['per_instance_s'] * 1e6:.2f} µs per op instance, ONE depth calibrated: fixed part unknown")
    fw_how += HELD.get(fw.get("held"), "")
    rows.append(["framework", "", "", f"{p.framework_s * 1e3:,.4f}", f"{p.framework_s / p.time_s:.1%}",
                 fw.get("status", ""), "", ""])
    res = p.residual
    if res is not None:
        rows.append(["residual", "", "", f"{p.residual_s * 1e3:,.4f}", f"{p.residual_s / p.time_s:.1%}",
                     res["status"], "", ""])
    lines += _table(["op", "count", "kernel µs", "time ms", "share", "how", "beyond", "own shape"], rows,
                    left=(0, 5, 7))
    lines += [f"framework  {fw_how} (modules, cache object, masks, Python; tiny-shape model path)"]
    if res is not None:
        how = (f"fixed {res['fixed_s'] * 1e3:.3f} ms + {res['per_instance_s'] * 1e6:.2f} µs per op instance over "
               f"{res['depths']} depths" if not res["one_depth"] else
               f"{res['per_instance_s'] * 1e6:.2f} µs per op instance, ONE depth")
        lines += [f"residual   {how}: the calibration models' full passes beyond their kernels and framework"]
    gb = _bytes
    lines += ["", f"total      {p.time_s * 1e3:,.4f} ms   {out['flops'] / 1e9:.3f} GFLOP   {gb(out['bytes'])} moved",
              f"weights    {gb(out['weight_bytes'])}", f"KV cache   {gb(out['kv_cache_bytes'])} after this pass"]
    if out["usable_memory_bytes"] is not None:
        where = "the box's RAM" if out["memory_kind"] == "cpu" else "device memory"
        context = out["max_context_at_batch"]
        lines += [f"capacity   usable {gb(out['usable_memory_bytes'])} ({out['usable_memory_source']}, reserve "
                  f"{out['reserve_fraction']:.0%} of {where}); max batch at this context: {out['max_batch_at_context']}, "
                  f"max context at this batch: {'unbounded (sliding window)' if context is None else context} tokens"]
    lines += [f"assumed    {x}" for x in out["assumptions"]] + [f"warning    {x}" for x in out["warnings"]]
    return lines
