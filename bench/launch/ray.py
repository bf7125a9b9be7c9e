"""Points across a Ray cluster: `python -m bench run --sweep S --executor ray [--address ADDR]`.

One Ray task per point (CUDA: num_gpus=1, and accelerator_type when the run names one; CPU: num_cpus=1, so the
cluster runs as many points at once as it has cores, and concurrent CPU points share caches and memory bandwidth:
they disturb each other's timings, which the interference canary flags but cannot undo). Each task measures its
point exactly as `--isolate` does: it lays a scratch copy of the run directory (sweep.json, run.json) on its node
and runs the child protocol there (bench/launch/child.py run_child: `python -m bench _point`, with its timeout and
its failure row), then returns the point's files. The driver writes them into the run directory (the rows file
last: it marks the point done), so resume, the lock, the report and compare work unchanged.

Each row's `box` is where it ran: the node's Ray accelerator type on CUDA, its host on CPU; run.json `boxes` keeps
each box's facts, and on CUDA the ceilings measured once per accelerator type (a `_ceilings` child in a task pinned
to that type), which the report sets that box's points against. A task that fails, or whose worker or node dies,
becomes an `error` row and the run goes on (no retries: a retried point would be measured twice); Ctrl-C cancels
the tasks still out (a running task's child is killed with it) and leaves a run `resume` finishes.

Ray is an optional extra (`pip install -e '.[ray]'`), imported only here and only when the executor runs.
"""
import json
import socket
import sys
import tempfile
from pathlib import Path

from bench.kernels.point import assemble_kernels
from bench.launch.child import CEILINGS_TIMEOUT_S, run_child, timeout_for
from bench.point.rows import base_row, error_message, failure_row
from bench.store.files import atomic_write, csv_text
from bench.store.meta import create_meta, read_meta, update_meta
from bench.store.points import MEASUREMENT_COLUMNS, assemble, point_done, point_files, save_point

INSTALL = "the Ray executor needs the [ray] extra: pip install -e '.[ray]'"


def import_ray():
    try:
        import ray
    except ImportError:
        raise ValueError(INSTALL) from None
    return ray


def executor_record(device, address: str | None, accelerator_type: str | None, gpus, isolate) -> dict:
    """run.json `executor`, checked before the run directory exists."""
    import_ray()
    if gpus:
        raise ValueError("--gpus and --executor ray do not go together: Ray places one point per GPU itself")
    if isolate is False:
        raise ValueError("--executor ray measures every point in its own process; leave --isolate on")
    if accelerator_type and device.kind != "cuda":
        raise ValueError("--accelerator-type needs a CUDA run")
    return {"name": "ray", "address": address, "accelerator_type": accelerator_type,
            "per_task": {"num_gpus": 1} if device.kind == "cuda" else {"num_cpus": 1}}


def task_options(executor: dict) -> dict:
    opts = {**executor["per_task"], "max_retries": 0}
    if executor.get("accelerator_type"):
        opts["accelerator_type"] = executor["accelerator_type"]
    return opts


# --- on the worker node ---

def scratch_run(tmp: str, sweep_text: str, meta: dict) -> Path:
    run_dir = Path(tmp) / meta["run_id"]
    run_dir.mkdir()
    (run_dir / "sweep.json").write_text(sweep_text)
    create_meta(run_dir, {**meta, "sweep_path": str(run_dir / "sweep.json")})
    return run_dir


def measure_remote(sweep_text: str, meta: dict, index: int, timeout_s: float) -> dict:
    """A Ray task: one point by the child protocol in a scratch run directory; its files come back as bytes."""
    import ray
    from bench.devices.select import get_device
    from bench.sweep import load_run_sweep
    with tempfile.TemporaryDirectory(prefix="bench-ray-") as tmp:
        run_dir = scratch_run(tmp, sweep_text, meta)
        sweep, _ = load_run_sweep(run_dir)
        device = get_device(meta["device"], meta.get("threads", 1), isolated=True)
        p = sweep.points[index]
        pid = p.point_id(device.kind)
        run_child(run_dir, index, p, pid, device, sweep, timeout_s=timeout_s)
        files = {f.name: f.read_bytes() for f in sorted((run_dir / "points").glob(f"{pid}.*")) if f.is_file()}
    return {"files": files, "node_id": ray.get_runtime_context().get_node_id(), "host": socket.gethostname()}


def ceilings_remote(threads: int, dtypes: list[str]) -> dict:
    """A Ray task on CUDA: the node type's ceilings and device facts, by the `_ceilings` child protocol."""
    import subprocess
    import ray
    with tempfile.TemporaryDirectory(prefix="bench-ray-") as tmp:
        out = Path(tmp) / "ceilings.json"
        r = subprocess.run([sys.executable, "-m", "bench", "_ceilings", str(out), str(threads), ",".join(dtypes)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=CEILINGS_TIMEOUT_S)
        if r.returncode != 0 or not out.exists():
            raise RuntimeError((r.stderr.strip().splitlines() or [f"exit status {r.returncode}"])[-1][:300])
        return {**json.loads(out.read_text()), "node_id": ray.get_runtime_context().get_node_id(),
                "host": socket.gethostname()}


# --- on the driver ---

def node_types(ray) -> dict[str, str]:
    """node id → its Ray accelerator type (the `accelerator_type:<T>` resource Ray sets on GPU nodes), or ''."""
    out = {}
    for n in ray.nodes():
        kinds = [k.split(":", 1)[1] for k in n.get("Resources", {}) if k.startswith("accelerator_type:")]
        out[n["NodeID"]] = kinds[0] if kinds else ""
    return out


def box_of(result: dict, kind: str, types: dict[str, str]) -> str:
    if kind != "cuda":
        return result["host"]
    return types.get(result["node_id"]) or "gpu"


def save_remote(run_dir: Path, pid: str, result: dict, box: str) -> list[dict]:
    """A task's files into the run directory: everything but the rows, then the rows with their box."""
    import csv
    import io
    (run_dir / "points").mkdir(exist_ok=True)
    rows_name = point_files(run_dir, pid)[0].name
    for name, data in result["files"].items():
        if name != rows_name and "/" not in name:
            atomic_write(run_dir / "points" / name, data.decode())
    rows = [{**r, "box": box} for r in csv.DictReader(io.StringIO(result["files"][rows_name].decode()))]
    atomic_write(run_dir / "points" / rows_name, csv_text(rows, MEASUREMENT_COLUMNS))
    return rows


def measure_node_types(ray, run_dir: Path, sweep, device, executor: dict, log) -> dict:
    """CUDA: the ceilings of every accelerator type the run may use, once each; CPU: the driver's host, whose
    ceilings the run measured itself (other CPU nodes are set against those: say so in docs/cluster.md)."""
    meta = read_meta(run_dir)
    boxes = dict(meta.get("boxes") or {})
    if device.kind != "cuda":
        host = meta.get("host") or socket.gethostname()
        boxes.setdefault(host, {"host": host, "device": "cpu", "device_name": meta.get("device_name"),
                                "ceilings": meta.get("ceilings"), "source": "the driver's own ceilings"})
        return update_meta(run_dir, boxes=boxes)["boxes"]
    wanted = [executor["accelerator_type"]] if executor.get("accelerator_type") else \
        sorted({t for t in node_types(ray).values() if t}) or [""]
    dtypes = sorted({p.resolved_dtype("cuda") for p in sweep.points})
    task = ray.remote(ceilings_remote)
    for t in wanted:
        box = t or "gpu"
        if box in boxes:
            continue
        print(f"measuring ceilings on a {box} node ({', '.join(dtypes)}) in a Ray task ...", file=log, flush=True)
        opts = {"num_gpus": 1, "max_retries": 0, **({"accelerator_type": t} if t else {})}
        try:
            res = ray.get(task.options(**opts).remote(device.threads, dtypes))
        except Exception as e:                     # RayTaskError and the rest: one line, the run stays resumable
            raise ValueError(f"measuring the ceilings on a {box} node failed: {error_message(e)}") from None
        boxes[box] = {"accelerator_type": t or None, "host": res["host"], "device": "cuda",
                      "device_name": res["info"].get("device_name"), "total_memory_bytes":
                      res["info"].get("total_memory_bytes"), "ceilings": res["ceilings"],
                      "ceilings_detail": res["detail"], "source": "a Ray task on that node type"}
        update_meta(run_dir, boxes=boxes)
    return boxes


def connect(ray, address: str | None, log) -> None:
    if ray.is_initialized():                 # a caller (a test, a notebook) already joined a cluster
        return
    try:
        ray.init(address=address, log_to_driver=False)
    except Exception as e:                         # no cluster at that address, a version mismatch
        raise ValueError(f"ray.init(address={address!r}) failed: {error_message(e)}") from None
    print(f"ray: {ray.cluster_resources()}", file=log, flush=True)


def execute_ray(run_dir: Path, sweep, device, meta: dict, log=sys.stderr) -> Path:
    ray = import_ray()
    from ray.exceptions import RayError
    executor = meta["executor"]
    connect(ray, executor.get("address"), log)
    boxes = measure_node_types(ray, run_dir, sweep, device, executor, log)
    meta = read_meta(run_dir)
    ids = [p.point_id(device.kind) for p in sweep.points]
    todo = [(i, p, pid) for i, (p, pid) in enumerate(zip(sweep.points, ids)) if not point_done(run_dir, pid)]
    if len(ids) > len(todo):
        print(f"resuming: {len(ids) - len(todo)} of {len(ids)} points already done", file=log, flush=True)
    task = ray.remote(measure_remote).options(**task_options(executor))
    refs = {task.remote(sweep.source_text, meta, i, timeout_for(run_dir, p, sweep, device.kind)): (i, p, pid)
            for i, p, pid in todo}
    types, done = node_types(ray), len(ids) - len(todo)
    try:
        while refs:
            ready, _ = ray.wait(list(refs), num_returns=1)
            i, p, pid = refs.pop(ready[0])
            try:
                result = ray.get(ready[0])
                box = box_of(result, device.kind, types)
                if box not in boxes:               # a node that joined after the start: its facts, no ceilings
                    types = node_types(ray)
                    box = box_of(result, device.kind, types)
                    boxes[box] = {"host": result["host"], "device": device.kind, "ceilings": None,
                                  "source": "joined during the run; set against the run's ceilings"}
                    update_meta(run_dir, boxes=boxes)
                rows = save_remote(run_dir, pid, result, box)
            except RayError as e:                  # RayTaskError, WorkerCrashedError, NodeDiedError, ...
                row = failure_row(base_row(p, pid, device, p.resolved_dtype(device.kind)), "error",
                                  f"ray task failed: {error_message(e)}")
                save_point(run_dir, pid, [row], [])
                rows = [row]
            done += 1
            assemble(run_dir, ids)
            assemble_kernels(run_dir, ids, point_done)
            print(f"[{done}/{len(ids)}] {rows[0].get('box') or '-'}  {p.label()}  {rows[0]['status']}", file=log,
                  flush=True)
    except BaseException:                          # Ctrl-C, SIGTERM: nothing left running for this run
        for ref in refs:
            ray.cancel(ref)
        raise
    update_meta(run_dir, boxes=boxes)
    return run_dir
