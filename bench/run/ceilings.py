"""The run's ceilings: measured at the start for every dtype the sweep uses (in a child on an isolated CUDA run,
so this process never creates a CUDA context; with --gpus on every GPU), and again at the end (drift)."""
import gc
import sys
import time
from pathlib import Path

from bench.ceilings import drift, measure_ceilings
from bench.env import run_metadata
from bench.launch.child import probe_ceilings
from bench.launch.parallel import check_gpus
from bench.store.files import write_json
from bench.store.meta import add_facts, read_meta, update_meta
from bench.sweep import Sweep
from bench.timing.canary import baseline


def ensure_ceilings(run_dir: Path, sweep: Sweep, device, log=sys.stderr) -> None:
    """Measure the ceilings of every dtype the sweep uses that run.json does not hold yet."""
    meta = read_meta(run_dir)
    dtypes = sorted({p.resolved_dtype(device.kind) for p in sweep.points})
    missing = [dt for dt in dtypes if dt not in meta.get("ceilings", {})]
    if not missing:
        return
    child = device.isolated
    print(f"measuring ceilings ({', '.join(missing)}){' in a child process' if child else ''} ...", file=log, flush=True)
    if child:
        probe_ceilings(device, run_dir, missing, log)
        meta = add_facts(run_dir, run_metadata(device))     # the device's facts, from the child
        meta = update_meta(run_dir, **canary_fields(device, meta))
    ceilings, detail = dict(meta.get("ceilings", {})), dict(meta.get("ceilings_detail", {}))
    t_ceil = time.perf_counter()
    for dt in missing:
        spec, det = device.ceilings(dt) if child else measure_ceilings(device, dt, meta.get("host", ""))
        ceilings[dt], detail[dt] = spec.to_json(), det
        write_json(run_dir / f"ceilings-{dt}.json", spec.to_json())     # usable as `--hardware` for theory
        meta = update_meta(run_dir, ceilings=ceilings, ceilings_detail=detail)
    wall_s = round(meta.get("ceilings_wall_s", 0.0) + time.perf_counter() - t_ceil, 3)
    gc.collect()
    device.empty_cache()                  # the ceilings' GiB-sized buffers: give them back before points run
    fields = gpu_run_fields(device, meta.get("gpus"), dtypes, run_dir, log) if device.kind == "cuda" else {}
    update_meta(run_dir, ceilings_wall_s=wall_s, **fields)


def end_ceilings(run_dir: Path, device, dtypes: list[str], log=sys.stderr) -> None:
    """The ceilings again at the end of the run: run.json gets `ceilings_end` (the detail) and `ceilings_drift`
    (end/start); an isolated CUDA run measures them in a child again; a --gpus run on every GPU, each GPU's
    drift against its own start in `ceilings_drift_by_gpu`."""
    meta = read_meta(run_dir)
    if "ceilings_end" in meta:
        return
    t0 = time.perf_counter()
    gpus = parent_gpus(device, meta.get("gpus")) if device.isolated else [device]
    ends, drifts = {}, {}
    for d in gpus:
        key = str(getattr(d, "index", 0))
        start = meta.get("ceilings_detail", {}) if d is device else meta.get("ceilings_detail_by_gpu", {}).get(key, {})
        if d.isolated:
            probe_ceilings(d, run_dir, dtypes, log)
        ends[key] = {dt: (d.ceilings(dt) if d.isolated else measure_ceilings(d, dt, meta.get("host", "")))[1]
                     for dt in dtypes}
        drifts[key] = {dt: drift(start.get(dt, {}), ends[key][dt]) for dt in dtypes}
    own = str(getattr(device, "index", 0))
    fields = {"ceilings_end": ends[own], "ceilings_drift": drifts[own]}
    if len(gpus) > 1:
        fields["ceilings_drift_by_gpu"] = drifts
    update_meta(run_dir, **fields, ceilings_end_wall_s=round(time.perf_counter() - t0, 3))


def end_canary(run_dir: Path, canary) -> None:
    """The canary read again right after the end ceilings, as at the start (the median of a baseline's readings):
    run.json `canary_end_s`, which analysis pairs with `ceilings_end` (analysis/roofscale.py). Nothing where this
    process holds no canary (isolated points: each child has its own)."""
    if canary is None or "canary_end_s" in read_meta(run_dir):
        return
    update_meta(run_dir, canary_end_s=baseline(canary).time_s)


MEMORY_PROBE_NOTE = ("each point's memory-probe trajectory starts from an empty caching allocator "
                     "(torch.cuda.empty_cache() just before it), so reserved peaks show the allocator's segment growth")


def gpu_run_fields(device, gpus: list[int] | None, dtypes: list[str], run_dir: Path, log) -> dict:
    """run.json fields of a CUDA run: the memory-probe note; what the parent holds on the GPU (none when points
    are isolated: its ceilings and device facts came from a child, bench/launch/child.py; else what is left after
    freeing its ceilings' buffers); with --gpus every GPU's UUID and ceilings (ceilings-gpu<i>-<dtype>.json),
    each measured by a child pinned to that GPU."""
    out = {"memory_probe": MEMORY_PROBE_NOTE}
    if device.isolated:
        out["parent_cuda_context"] = False
    else:
        out["parent_device_used_bytes"] = device.total_bytes() - device.free_bytes()
    if not gpus:
        return out
    if not device.isolated:
        raise ValueError("--gpus needs CUDA and isolated points (leave --isolate on)")
    check_gpus(gpus, device.device_count())          # the CLI refused these already; a resume or a test may not
    by_gpu, uuids, canaries, details = {}, {}, {}, {}
    for g in gpus:
        d = device
        if g != device.index:                          # the run's own GPU was probed a moment ago
            d = type(device)(g, device.threads, cuda=device.cuda)       # another GPU's parent view
            print(f"measuring ceilings on GPU {g} ({', '.join(dtypes)}) in a child process ...", file=log, flush=True)
            probe_ceilings(d, run_dir, dtypes, log)
        uuids[str(g)] = d.uuid()
        if d.canary():
            canaries[str(g)] = d.canary()
        by_gpu[str(g)], details[str(g)] = {}, {dt: d.ceilings(dt)[1] for dt in dtypes}
        for dt in dtypes:
            spec = d.ceilings(dt)[0].to_json()
            by_gpu[str(g)][dt] = spec
            write_json(run_dir / f"ceilings-gpu{g}-{dt}.json", spec)
    out.update({"gpus": gpus, "gpu_uuids": uuids, "ceilings_by_gpu": by_gpu, "canary_by_gpu": canaries,
                "ceilings_detail_by_gpu": details})
    return out


def parent_gpus(device, gpus: list[int] | None) -> list:
    """The parent views of a --gpus run's GPUs (the run's own device first), or [device]."""
    if not gpus:
        return [device]
    return [device] + [type(device)(g, device.threads, cuda=device.cuda) for g in gpus if g != device.index]


def canary_fields(device, meta: dict) -> dict:
    """An isolated run's canary baseline, taken on its GPU by the ceilings child (bench/launch/child.py), for
    run.json; nothing when the run has one or the child took none."""
    ref = device.canary() if device.isolated else None
    if meta.get("canary_baseline_s") is not None or not ref:
        return {}
    return {"canary_baseline_s": ref["baseline_s"], "canary_slow_rel": ref["slow_rel"]}
