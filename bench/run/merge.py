"""`python -m bench merge RUN_DIR... --out DIR`: shards (bench/run/shard.py), or any runs of one sweep, assembled
into one run directory that analysis reads like any other.

Refused, in one line: runs whose checked facts (MERGE_KEYS: the sweep, the commit, the device kind and name, the
dtypes) differ, unless `--by KEY` says that key is what separates them (e.g. `--by device_name` for one sweep
measured on an H100 and an A100); a point finished in two runs; a point finished in none (unless `--partial`).
Each input becomes one box: run.json `boxes` holds its facts and ceilings, `shards` its whole run.json, and every
row's `box` column names the box that measured it, so the report sets each point against its own box's ceilings.
"""
import shutil
import sys
from pathlib import Path

from bench.kernels.point import assemble_kernels
from bench.run.summary import record_profile_overhead, summarize
from bench.store.files import atomic_write, csv_text, read_csv
from bench.store.meta import create_meta, read_meta, update_meta
from bench.store.points import MEASUREMENT_COLUMNS, assemble, point_done, point_files
from bench.sweep import Sweep, parse_sweep
from theory.jsonio import read_json

MERGE_KEYS = ("sweep_sha1", "git_commit", "device", "device_name", "dtypes")
NEVER_BY = {"sweep_sha1": "runs of different sweeps never make one run",
            "device": "a point's id resolves dtype auto by device kind, so CPU and CUDA runs share no point"}
# what each box's entry in `boxes` keeps (its whole run.json is under `shards`)
BOX_FACTS = ("run_id", "host", "device", "device_name", "total_memory_bytes", "gpu_uuid", "threads", "git_commit",
             "torch", "ceilings", "ceilings_detail", "ceilings_drift")
# a shard's own record of its run, not the merged run's: kept under `shards` only
PER_SHARD = ("run_id", "shard", "points", "sweep_path", "remeasured", "remeasure_wall_s", "ceilings_end",
             "ceilings_drift", "ceilings_end_wall_s", "profile_inflation", "repeat_summary", "kernel_cache", "executor")


def full_sweep(run_dir: Path, meta: dict) -> Sweep:
    """The whole sweep a run (or shard) recorded, checked against its sha1."""
    import hashlib
    text = (run_dir / "sweep.json").read_text()
    if hashlib.sha1(text.encode()).hexdigest() != meta.get("sweep_sha1"):
        raise ValueError(f"{run_dir}/sweep.json does not match the sweep_sha1 in its run.json; refusing to merge")
    return parse_sweep(read_json(run_dir / "sweep.json"), text, str(run_dir / "sweep.json"))


def facts(meta: dict, sweep: Sweep) -> dict:
    kind = meta.get("device")
    return {**{k: meta.get(k) for k in MERGE_KEYS[:-1]},
            "dtypes": ",".join(sorted({p.resolved_dtype(kind) for p in sweep.points}))}


def check_by(by: list[str]) -> None:
    for k in by:
        if k not in MERGE_KEYS:
            raise ValueError(f"--by {k}: the checked keys are {', '.join(MERGE_KEYS)}")
        if k in NEVER_BY:
            raise ValueError(f"--by {k}: not allowed ({NEVER_BY[k]})")


def read_inputs(run_dirs: list[Path]) -> list[tuple[Path, dict, Sweep]]:
    if len({d.resolve() for d in run_dirs}) != len(run_dirs):
        raise ValueError("refusing to merge: a run directory is named twice")
    out = []
    for d in run_dirs:
        if not (d / "run.json").is_file() or not (d / "sweep.json").is_file():
            raise ValueError(f"{d} is not a run directory (no run.json or sweep.json)")
        meta = read_meta(d)
        if not meta.get("ceilings"):
            raise ValueError(f"{d} has no ceilings yet (`python -m bench resume {d}` measures them)")
        out.append((d, meta, full_sweep(d, meta)))
    return out


def check_same(inputs, by: list[str]) -> None:
    first_dir, first_meta, first_sweep = inputs[0]
    want = facts(first_meta, first_sweep)
    for d, meta, sweep in inputs[1:]:
        got = facts(meta, sweep)
        for k in MERGE_KEYS:
            if k not in by and got[k] != want[k]:
                hint = f" ({NEVER_BY[k]})" if k in NEVER_BY else f"; pass --by {k} if that is what separates them"
                raise ValueError(f"refusing to merge: {k} is {want[k]!r} in {first_dir} but {got[k]!r} in {d}{hint}")


def owners(inputs, point_ids: list[str]) -> dict[str, int]:
    """point id → the input that finished it; a point finished twice is refused."""
    owner: dict[str, int] = {}
    for i, (d, _, _) in enumerate(inputs):
        for pid in point_ids:
            if point_done(d, pid):
                if pid in owner:
                    raise ValueError(f"refusing to merge: point {pid} was measured in both {inputs[owner[pid]][0]} "
                                     f"and {d} (overlapping shards); merge one of them")
                owner[pid] = i
    return owner


def box_ids(inputs) -> list[str]:
    ids = []
    for _, meta, _ in inputs:
        base = meta.get("run_id") or "box"
        ids.append(base if base not in ids else f"{base}-{len(ids)}")
    return ids


def copy_point(src: Path, dst: Path, pid: str, box: str) -> None:
    """The point's files (samples, repeat record, profile, kernels, traces), then its rows with their box last:
    the measurements file marks the point done."""
    (dst / "points").mkdir(exist_ok=True)
    rows_file = point_files(src, pid)[0]
    for f in sorted((src / "points").glob(f"{pid}.*")):
        if f != rows_file and f.is_file():
            shutil.copyfile(f, dst / "points" / f.name)
    rows = [{**r, "box": box} for r in read_csv(rows_file)]
    atomic_write(point_files(dst, pid)[0], csv_text(rows, MEASUREMENT_COLUMNS))


def merge(run_dirs: list[Path], out: Path, by: list[str] = (), partial: bool = False, log=sys.stderr) -> Path:
    check_by(list(by))
    if not run_dirs:
        raise ValueError("merge needs at least one run directory")
    inputs = read_inputs([Path(d) for d in run_dirs])
    check_same(inputs, list(by))
    first_dir, first_meta, sweep = inputs[0]
    kind = first_meta["device"]
    ids = [p.point_id(kind) for p in sweep.points]
    owner = owners(inputs, ids)
    missing = [i for i, pid in enumerate(ids) if pid not in owner]
    if missing and not partial:
        raise ValueError(f"refusing to merge: {len(missing)} of {len(ids)} points were measured by none of the runs "
                         f"(first: {sweep.points[missing[0]].label()}); finish the shard that holds them "
                         f"(`python -m bench resume DIR`) or pass --partial")
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"--out {out} exists and is not empty; name a new directory")
    out.mkdir(parents=True, exist_ok=True)
    boxes = box_ids(inputs)
    for pid in ids:
        if pid in owner:
            copy_point(inputs[owner[pid]][0], out, pid, boxes[owner[pid]])
    shutil.copyfile(first_dir / "sweep.json", out / "sweep.json")
    for f in first_dir.glob("ceilings-*.json"):              # the first box's, usable as `--hardware` for theory
        shutil.copyfile(f, out / f.name)
    merged = {k: v for k, v in first_meta.items() if k not in PER_SHARD}
    merged.update({
        "run_id": out.name, "points": len(ids), "merged_from": [str(d) for d, _, _ in inputs],
        "boxes": {b: {**{k: m.get(k) for k in BOX_FACTS}, "shard": m.get("shard", {}).get("index"),
                      "shard_count": m.get("shard", {}).get("count")}
                  for b, (_, m, _) in zip(boxes, inputs)},
        "shards": [{"box": b, "path": str(d), "point_ids": [pid for pid in ids if owner.get(pid) == i], "run": m}
                   for i, (b, (d, m, _)) in enumerate(zip(boxes, inputs))],
    })
    create_meta(out, merged)
    assemble(out, ids)
    assemble_kernels(out, ids, point_done)
    update_meta(out, repeat_summary=summarize(out, ids))
    record_profile_overhead(out)
    print(f"merged {len(owner)} of {len(ids)} points from {len(inputs)} run(s) into {out}"
          + (f" ({len(missing)} missing: --partial)" if missing else ""), file=log, flush=True)
    return out
