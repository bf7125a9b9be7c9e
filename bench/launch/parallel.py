"""Several GPUs in one box: `python -m bench run --gpus 0,1,2,3` measures isolated points in parallel, one child
per GPU (CUDA_VISIBLE_DEVICES), each row recording its GPU's UUID; ceilings are measured on every GPU
(bench/run/ceilings.py).
Points still land whole (each child writes its point atomically) and only this process assembles the run files,
so resume and atomic writes keep their guarantees."""
import queue
import sys
import threading
import time
from pathlib import Path

from bench.kernels.point import assemble_kernels, not_composed_note
from bench.launch.child import run_child
from bench.store.points import assemble, point_done

def parse_gpus(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        gpus = [int(x) for x in text.split(",") if x.strip() != ""]
    except ValueError:
        raise ValueError(f"--gpus takes GPU indices separated by commas, e.g. 0,1,2,3; got {text!r}") from None
    if not gpus or len(set(gpus)) != len(gpus) or min(gpus) < 0:
        raise ValueError(f"--gpus takes distinct non-negative GPU indices, got {text!r}")
    return gpus


def check_gpus(gpus: list[int], count: int) -> None:
    """Every --gpus index among the GPUs this process sees (torch.cuda.device_count(), no context made)."""
    bad = [g for g in gpus if g >= count]
    if bad:
        raise ValueError(f"--gpus {','.join(map(str, gpus))}: this process sees {count} GPU(s), no index {bad[0]}")


def execute_parallel(run_dir: Path, sweep, device, meta: dict, log=sys.stderr) -> Path:
    gpus = [str(g) for g in meta["gpus"]]
    ids = [p.point_id(device.kind) for p in sweep.points]
    todo: queue.Queue = queue.Queue()
    for i, (p, pid) in enumerate(zip(sweep.points, ids)):
        if not point_done(run_dir, pid):
            todo.put((i, p, pid))
    n_todo, done_before = todo.qsize(), len(ids) - todo.qsize()
    if done_before:
        print(f"resuming: {done_before} of {len(ids)} points already done", file=log, flush=True)
    results: queue.Queue = queue.Queue()

    def worker(gpu: str):
        while True:
            try:
                i, p, pid = todo.get_nowait()
            except queue.Empty:
                return
            t0 = time.perf_counter()
            try:
                rows = run_child(run_dir, i, p, pid, device, sweep, gpu=gpu)
            except BaseException as e:                 # never leave the collector waiting
                rows = [{"status": "error", "message": str(e)[:300]}]
            results.put((p, rows, gpu, time.perf_counter() - t0))

    threads = [threading.Thread(target=worker, args=(g,), daemon=True) for g in gpus]
    for t in threads:
        t.start()
    for k in range(n_todo):
        p, rows, gpu, secs = results.get()
        assemble(run_dir, ids)                         # only this thread writes the run's files
        assemble_kernels(run_dir, ids, point_done)
        print(f"[{done_before + k + 1}/{len(ids)}] GPU {gpu}  {p.label()}  {rows[0]['status']}  {secs:.1f} s"
              f"{not_composed_note(p, meta.get('kernels', False), rows[0]['status'])}", file=log, flush=True)
    for t in threads:
        t.join()
    assemble(run_dir, ids)
    assemble_kernels(run_dir, ids, point_done)
    return run_dir
