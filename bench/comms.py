"""`python -m bench comms` under torchrun: collective latency and bandwidth, and a tensor-parallel decoder layer.

Every timed collective is preceded by a barrier; a sample is the maximum over ranks of each rank's time.
α (latency) and β (per-direction link bandwidth) are fitted to t = α + 2(N−1)/N · bytes/β (ring all-reduce;
all-gather moves (N−1)/N of the gathered bytes). Bus bandwidth = algorithm bandwidth × the ring factor.
Collectives run with a timeout, so a rank that dies fails the run with a message instead of hanging.

Timing never goes through a sleeping wait: TORCH_NCCL_BLOCKING_WAIT is left unset, since with it
Work.wait() polls completion with a sleep (ProcessGroupNCCL.cpp WorkNCCL::synchronizeInternal:
`while (!isCompleted()) ... std::this_thread::sleep_for(kSynchronizeBusyWaitMillis)`, 10 ms in older sources,
1 ms in current ones), so every collective would read at least that. Without it wait() only makes the current
stream wait on NCCL's (synchronizeStreams). A sample is host time after a device synchronisation that spins
on a CUDA event (Ctx.sync); that spin also has a deadline (the run's --timeout-s), so a rank left waiting for a
dead one stops with the one-line message. The process group's timeout stays with the NCCL watchdog (async
error handling, on by default), which ends a rank hung anywhere else.
"""
import argparse
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from bench.env import run_metadata, utc_now
from bench.store.files import atomic_write, csv_text, write_json
from bench.store.meta import create_meta
from bench.timing.stats import quantile

COMMS_COLUMNS = ["op", "world_size", "message_bytes", "time_s", "time_p10_s", "time_p90_s", "repeats",
                 "algbw_bytes_per_s", "busbw_bytes_per_s", "backend", "rank_scope"]
DEFAULT_SIZES = [4 * 4**i for i in range(13)]          # 4 B … 64 MiB


def ring_factor(op: str, n: int) -> float:
    return 2 * (n - 1) / n if op == "all_reduce" else (n - 1) / n


def fit_alpha_beta(sizes: list[int], times: list[float], op: str, n: int) -> dict:
    """t = α + factor·bytes/β by least squares on *relative* error (so a 4-byte message counts as much as a
    64 MiB one); α and β kept positive."""
    x = np.array(sizes, float) * ring_factor(op, n)
    t = np.array(times, float)
    a = np.stack([1 / t, x / t], axis=1)                     # (α + x·inv_β)/t ≈ 1
    (alpha, inv_beta), *_ = np.linalg.lstsq(a, np.ones_like(t), rcond=None)
    if inv_beta <= 0:                                         # latency-only data: no bandwidth visible
        inv_beta = float(np.polyfit(x, t, 1)[0]) if np.polyfit(x, t, 1)[0] > 0 else 0.0
    return {"interconnect_latency_s": max(float(alpha), 0.0),
            "interconnect_bandwidth_bytes_per_s": float(1 / inv_beta) if inv_beta > 0 else None,
            "fit_points": len(sizes), "op": op, "world_size": n, "fit": "least squares on relative error"}


class Ctx:
    def __init__(self, backend: str, device: str, timeout_s: float = 120.0):
        self.backend, self.device, self.timeout_s = backend, device, timeout_s
        self.rank, self.world = dist.get_rank(), dist.get_world_size()

    cuda = torch.cuda                            # seam: the tests hand in the CUDA stand-in
    timeout_s = 120.0
    clock = staticmethod(time.perf_counter)      # seam: the tests hand in a clock that jumps

    def sync(self):
        """Wait until this rank's device has finished all queued work: spin on an event recorded now (no sleep,
        so the wait adds microseconds, as cudaDeviceSynchronize's spin does), for at most timeout_s. A gloo
        collective has finished when it returns."""
        if not self.device.startswith("cuda"):
            return
        done = self.cuda.Event()
        done.record()
        deadline = self.clock() + self.timeout_s
        while not done.query():
            if self.clock() > deadline:
                raise TimeoutError(f"the device did not finish within {self.timeout_s:.0f} s")

    def check(self, *tensors):
        """Every tensor handed to a collective must live on this rank's device: NCCL refuses CPU tensors
        ("No backend type associated with device type cpu"), so catch the mistake under gloo too."""
        want = torch.device(self.device)
        for t in tensors:
            if t.device.type != want.type or (want.index is not None and t.device.index != want.index):
                raise AssertionError(f"rank {self.rank}: a collective got a tensor on {t.device}, but this rank's "
                                     f"device is {want} ({self.backend} needs tensors there)")
        return tensors[0] if len(tensors) == 1 else tensors

    def barrier(self):
        """NCCL: name the rank's GPU, or the barrier guesses one from the rank number (and may hang)."""
        if self.device.startswith("cuda"):
            dist.barrier(device_ids=[torch.device(self.device).index])
        else:
            dist.barrier()

    def max_over_ranks(self, value: float) -> float:
        t = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(self.check(t), op=dist.ReduceOp.MAX)
        self.sync()                              # .item() would block without a deadline
        return float(t.item())


def time_collective(ctx: Ctx, op: str, nbytes: int, warmup: int, repeats: int) -> list[float]:
    numel = max(1, nbytes // 4)
    x = torch.ones(numel, dtype=torch.float32, device=ctx.device)
    out = torch.empty(numel * ctx.world, dtype=torch.float32, device=ctx.device) if op == "all_gather" else None
    gather = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor
    ctx.check(x, *([out] if out is not None else []))
    run = (lambda: dist.all_reduce(x)) if op == "all_reduce" else (lambda: gather(out, x))
    samples = []
    for i in range(warmup + repeats):
        ctx.barrier()
        ctx.sync()
        t0 = time.perf_counter()
        run()
        ctx.sync()
        t = ctx.max_over_ranks(time.perf_counter() - t0)
        if i >= warmup:
            samples.append(t)
    return samples


def collectives(ctx: Ctx, sizes: list[int], warmup: int, repeats: int, log) -> list[dict]:
    rows = []
    for op in ("all_reduce", "all_gather"):
        for nbytes in sizes:
            s = time_collective(ctx, op, nbytes, warmup, repeats)
            med = statistics.median(s)
            payload = nbytes * (ctx.world if op == "all_gather" else 1)     # all_gather: the gathered tensor
            algbw = payload / med
            rows.append({"op": op, "world_size": ctx.world, "message_bytes": payload, "time_s": med,
                         "time_p10_s": quantile(s, 0.1), "time_p90_s": quantile(s, 0.9), "repeats": len(s),
                         "algbw_bytes_per_s": algbw, "busbw_bytes_per_s": algbw * ring_factor(op, ctx.world),
                         "backend": ctx.backend, "rank_scope": "max over ranks"})
            if ctx.rank == 0:
                print(f"{op:<10} {payload:>12d} B  {med * 1e6:10.1f} us  busbw {algbw * ring_factor(op, ctx.world) / 1e9:8.3f} GB/s",
                      file=log, flush=True)
    return rows


def build_parser() -> argparse.ArgumentParser:
    from theory.cliutil import HelpFormatter, OneLineParser
    p = OneLineParser(prog="python -m bench comms", description=__doc__.strip().splitlines()[0],
                      formatter_class=HelpFormatter, epilog="example:\n  torchrun --standalone --nproc-per-node 2 "
                      "-m bench comms --out results      # what `make bench-comms NPROC=2` runs")
    p.add_argument("--out", type=Path, default=Path("results"), help="parent directory of the run directory")
    p.add_argument("--run-dir", type=Path, help="write into this directory (default: a new one under --out)")
    p.add_argument("--run-dir-file", type=Path, help="rank 0 writes the run directory's path into this file "
                   "(what `make bench-comms` reads: torchrun's output may end with NCCL's log lines)")
    p.add_argument("--max-bytes", type=int, default=64 * 2**20, help="largest message (bytes)")
    p.add_argument("--repeats", type=int, default=10, help="timed repeats per message size")
    p.add_argument("--warmup", type=int, default=3, help="untimed calls before the repeats")
    p.add_argument("--timeout-s", type=float, default=120.0, help="collective timeout")
    p.add_argument("--backend", choices=("auto", "gloo", "nccl"), default="auto", help="auto: NCCL on GPUs, else gloo")
    p.add_argument("--tp-hidden", type=int, nargs="*", default=[256, 1024], help="widths of the TP layer test")
    p.add_argument("--no-tp", action="store_true", help="skip the tensor-parallel layer")
    p.add_argument("--fail-rank", type=int, help=argparse.SUPPRESS)     # fault injection for tests: this rank dies
    return p


def setup_backend(requested: str, local: int, timeout_s: float, cuda=torch.cuda, dist_mod=None) -> tuple[str, str]:
    """Pick the backend (NCCL where torch has CUDA), bind this rank to its GPU and start the process group.
    `cuda` and `dist_mod` are seams for the tests (the CUDA stand-in and a fake torch.distributed)."""
    dist_mod = dist if dist_mod is None else dist_mod
    if requested == "auto":                    # never gloo-on-CPU by accident on a GPU box whose torch lacks CUDA
        from bench.devices.select import choose_auto
        choose_auto(cuda.is_available(), torch.version.cuda, torch.__version__)
    backend = ("nccl" if cuda.is_available() else "gloo") if requested == "auto" else requested
    device = f"cuda:{local}" if backend == "nccl" else "cpu"
    if backend == "nccl":
        # No TORCH_NCCL_BLOCKING_WAIT: it makes every wait() sleep-poll (see the module's docstring). A dead
        # rank is caught by Ctx.sync's deadline, or else by the NCCL watchdog at the process group's timeout.
        cuda.set_device(local)
    torch.set_num_threads(1)
    # device_id binds the NCCL communicator to this rank's GPU up front (barriers then use it too).
    dist_mod.init_process_group(backend, timeout=timedelta(seconds=timeout_s),
                                **({"device_id": torch.device(device)} if backend == "nccl" else {}))
    return backend, device


def check_options(a) -> None:
    """Refused before torchrun's ranks meet: a hang or a traceback on every rank helps nobody."""
    if a.max_bytes < DEFAULT_SIZES[0]:
        raise ValueError(f"--max-bytes must be at least {DEFAULT_SIZES[0]}, got {a.max_bytes}")
    if a.repeats < 1 or a.warmup < 0:
        raise ValueError(f"--repeats must be at least 1 and --warmup at least 0, got {a.repeats} and {a.warmup}")
    if not 0 < a.timeout_s <= 86400:            # also false for NaN
        raise ValueError(f"--timeout-s must be in (0, 86400], got {a.timeout_s}")
    if any(h < 1 for h in a.tp_hidden):
        raise ValueError(f"--tp-hidden widths must be positive, got {a.tp_hidden}")


def main(argv=None) -> int:
    a = build_parser().parse_args(argv)
    check_options(a)
    if "RANK" not in os.environ:
        raise ValueError("run under torchrun, e.g. `torchrun --standalone --nproc-per-node 2 -m bench comms` "
                         "(or `make bench-comms NPROC=2`)")
    backend, device = setup_backend(a.backend, int(os.environ.get("LOCAL_RANK", 0)), a.timeout_s)
    ctx = Ctx(backend, device, a.timeout_s)
    log = sys.stderr
    if a.fail_rank == ctx.rank:
        print(f"rank {ctx.rank}: exiting on purpose (--fail-rank)", file=sys.stderr, flush=True)
        os._exit(3)
    try:
        run_dir = a.run_dir
        if run_dir is None:
            name = f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{'cuda' if backend == 'nccl' else 'cpu'}-comms-np{ctx.world}"
            box = [str(a.out / name)]
            dist.broadcast_object_list(box, src=0)
            run_dir = Path(box[0])
        run_dir.mkdir(parents=True, exist_ok=True)
        sizes = [s for s in DEFAULT_SIZES if s <= a.max_bytes]
        rows = collectives(ctx, sizes, a.warmup, a.repeats, log)
        atomic_write(run_dir / f"comms-rank{ctx.rank}.csv", csv_text(rows, COMMS_COLUMNS))
        fits = {}
        for op in ("all_reduce", "all_gather"):
            part = [r for r in rows if r["op"] == op]
            fits[op] = fit_alpha_beta([r["message_bytes"] for r in part], [r["time_s"] for r in part], op, ctx.world)
        tp_rows = []
        if not a.no_tp:
            from bench.tp import tp_layer_rows
            tp_rows = tp_layer_rows(ctx, a.tp_hidden, log)
            from bench.tp import TP_COLUMNS
            atomic_write(run_dir / f"tp-rank{ctx.rank}.csv", csv_text(tp_rows, TP_COLUMNS))
        if ctx.rank == 0:
            atomic_write(run_dir / "comms.csv", csv_text(rows, COMMS_COLUMNS))
            if tp_rows:
                atomic_write(run_dir / "tp.csv", csv_text(tp_rows, TP_COLUMNS))
            fit = fits["all_reduce"]
            write_json(run_dir / "comms_fit.json", {
                # Same keys as a theory hardware spec's interconnect terms, so it can be merged into one.
                "interconnect_latency_s": fit["interconnect_latency_s"],
                "interconnect_bandwidth_bytes_per_s": fit["interconnect_bandwidth_bytes_per_s"],
                "fits": fits, "backend": backend, "world_size": ctx.world, "utc_time": utc_now()})
            from bench.devices.select import get_device
            meta = run_metadata(get_device("cuda" if backend == "nccl" else "cpu", 1))
            create_meta(run_dir, {"run_id": run_dir.name, "kind": "comms", **meta,
                                              "world_size": ctx.world, "backend": backend, "timeout_s": a.timeout_s,
                                              "sizes_bytes": sizes, "repeats": a.repeats, "warmup": a.warmup})
            print(f"all_reduce fit: alpha {fit['interconnect_latency_s'] * 1e6:.1f} us, beta "
                  f"{(fit['interconnect_bandwidth_bytes_per_s'] or 0) / 1e9:.3f} GB/s per direction", file=log)
            print(run_dir)
            if a.run_dir_file is not None:
                atomic_write(a.run_dir_file, f"{run_dir}\n")
        ctx.barrier()
    except (RuntimeError, dist.DistBackendError, TimeoutError) as e:
        print(f"rank {ctx.rank}: a collective failed or timed out after {a.timeout_s:.0f} s (did another rank die?): "
              f"{str(e).splitlines()[0][:200]}", file=sys.stderr)
        return 1
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0
