"""run.json: the run's own record. `create_meta` writes it once, when the run starts; afterwards `update_meta` is
its only writer (read, merge the named keys, write atomically), so every key a run records is listed here.

The device's facts (bench.env.run_metadata: versions, host, and whatever the device's info() reports) are
open-ended; they go in through `add_facts`, which never overwrites a key already there."""
import json
from pathlib import Path

from bench.store.files import write_json
from theory.errors import TheoryError

META_NAME = "run.json"
RUN_KEYS = (
    # create_run (bench/run/create.py)
    "run_id", "device", "threads", "sweep_name", "sweep_path", "sweep_sha1", "repeats", "warmup_s", "min_repeats",
    "max_repeats", "max_point_s", "points", "profile", "kernels", "kernel_timing", "kernel_cache_dir",
    "isolate", "gpus",
    # a shard of a sweep (bench/run/shard.py), where the points ran (bench/launch/ray.py)
    "shard", "executor",
    # ceilings at the start (bench/run/ceilings.py) and on every GPU
    "ceilings", "ceilings_detail", "ceilings_wall_s", "memory_probe", "parent_cuda_context",
    "parent_device_used_bytes", "gpu_uuids", "ceilings_by_gpu", "ceilings_detail_by_gpu",
    # the interference canary's reference (bench/launch/inline.py; isolated runs: the ceilings child, per GPU)
    "canary_baseline_s", "canary_slow_rel", "canary_by_gpu",
    # the end of the run (bench/run/endrun.py, ceilings.py, summary.py, execute.py)
    "remeasured", "remeasure_wall_s", "ceilings_end", "ceilings_drift", "ceilings_end_wall_s",
    "ceilings_drift_by_gpu", "canary_end_s",
    "profile_inflation", "repeat_summary", "kernel_cache",
    # per-box facts: a merge of shards (bench/run/merge.py), a Ray run's node types (bench/launch/ray.py); each
    # row's `box` names its entry in `boxes`, whose ceilings analysis sets it against
    "boxes", "shards", "merged_from",
)


def meta_file(run_dir: Path) -> Path:
    return Path(run_dir) / META_NAME


def read_meta(run_dir: Path) -> dict:
    return json.loads(meta_file(run_dir).read_text())


def create_meta(run_dir: Path, meta: dict) -> None:
    """The first run.json of a run directory (bench's run, or a comms run with its own keys)."""
    write_json(meta_file(run_dir), meta)


def update_meta(run_dir: Path, **fields) -> dict:
    """Merge `fields` into run.json (keys already there keep their place) and return the whole record."""
    unknown = sorted(set(fields) - set(RUN_KEYS))
    if unknown:
        raise TheoryError(f"run.json has no key {unknown[0]!r} (bench.store.meta.RUN_KEYS lists them)")
    meta = read_meta(run_dir)
    meta.update(fields)
    write_json(meta_file(run_dir), meta)
    return meta


def add_facts(run_dir: Path, facts: dict) -> dict:
    """The device's facts, each kept only where run.json does not hold that key yet."""
    meta = read_meta(run_dir)
    for k, v in facts.items():
        meta.setdefault(k, v)
    write_json(meta_file(run_dir), meta)
    return meta
