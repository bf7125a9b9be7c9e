"""`python -m bench`: measure real Llama-style models on this machine's CPU or GPU."""
import argparse
import sys
from pathlib import Path

from bench.kernels import DEFAULT_KERNEL_CACHE, KERNELS_EXAMPLE, RESULTS_DIR
from theory.cliutil import HelpFormatter, OneLineParser, run_main

DEFAULT_OUT = RESULTS_DIR
SWEEP_DIR = Path(__file__).parent / "sweeps"         # bench.sweep.SWEEP_DIR (not imported: --help stays light)


def shipped_sweeps() -> list[str]:
    """Every file in bench/sweeps/, and `default`, which picks default-cpu or default-cuda by device."""
    return ["default (default-cpu or default-cuda, by device)", *sorted(p.stem for p in SWEEP_DIR.glob("*.json"))]


def build_parser() -> OneLineParser:
    p = OneLineParser(prog="python -m bench", description=__doc__.strip(), formatter_class=HelpFormatter,
                      epilog=EXAMPLES)
    sub = p.add_subparsers(dest="command", required=True, parser_class=OneLineParser, help="what to do")
    r = sub.add_parser("run", help="run a sweep into a new results/<run_id>/", formatter_class=HelpFormatter,
                       epilog=EXAMPLES)
    r.add_argument("--sweep", default="default", help=f"a shipped sweep: {', '.join(shipped_sweeps())}; or a path to a "
                   "sweep JSON")
    r.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="where to measure (auto: CUDA if present)")
    r.add_argument("--threads", type=int, default=1, help="torch threads (1 is stable on shared cores)")
    r.add_argument("--out", type=Path, default=DEFAULT_OUT, help="parent directory of the run directory")
    r.add_argument("--no-report", action="store_true", help="do not write the report at the end")
    r.add_argument("--no-profile", action="store_true", help="skip the torch.profiler attribution (profile.csv)")
    r.add_argument("--no-kernels", action="store_true",
                   help="skip timing each op's kernel alone at the point's shapes (kernels.csv, the composed prediction)")
    r.add_argument("--cached-kernels", action="store_true",
                   help="time kernels after each point and reuse the per-box kernel cache (faster, but the kernels "
                   "carry the box's speed of whenever they were timed); default: each eager point's kernels are "
                   "sampled in rounds between its own repeats")
    r.add_argument("--kernel-cache", type=Path,
                   help=f"per-box kernel cache directory (default: <--out>/kernel-cache, which for the default --out "
                        f"is {DEFAULT_KERNEL_CACHE}, the folder `bench kernels` uses)")
    r.add_argument("--isolate", action=argparse.BooleanOptionalAction, default=None,
                   help="measure each point in a child process (default: on for CUDA, off for CPU)")
    r.add_argument("--gpus", help="CUDA: GPU indices measuring isolated points in parallel, e.g. 0,1,2,3")
    r.add_argument("--shard", metavar="K/N", help="measure only shard K (from 0) of N, balanced by theory's predicted "
                   "work; `python -m bench merge` puts the shards together (Slurm: --shard "
                   "$SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT with --array=0-<N-1>)")
    r.add_argument("--executor", choices=("local", "ray"), default="local",
                   help="ray: one Ray task per point across a cluster (pip install -e '.[ray]'; docs/cluster.md)")
    r.add_argument("--address", help="--executor ray: the cluster to join (ray.init(address=...); default: "
                   "RAY_ADDRESS, or a local cluster started for this run)")
    r.add_argument("--accelerator-type", help="--executor ray on CUDA: run every point on this Ray accelerator type "
                   "(e.g. H100); default: any GPU, each point recording the type it got")
    s = sub.add_parser("resume", help="finish an interrupted run without repeating finished points",
                       formatter_class=HelpFormatter, epilog="example:\n  python -m bench resume results/<run_id>")
    s.add_argument("run_dir", type=Path, help="the run directory printed when the run started")
    s.add_argument("--no-report", action="store_true", help="do not write the report at the end")
    m = sub.add_parser("merge", help="assemble shards (or runs of one sweep from several boxes) into one run",
                       formatter_class=HelpFormatter, epilog="example:\n  python -m bench merge results/*-shard*of4 "
                       "--out results/merged")
    m.add_argument("run_dirs", type=Path, nargs="+", help="the shards' run directories")
    m.add_argument("--out", type=Path, required=True, help="the merged run directory (new or empty)")
    m.add_argument("--by", action="append", default=[], metavar="KEY",
                   help="a checked key allowed to differ between the runs, e.g. device_name (repeatable)")
    m.add_argument("--partial", action="store_true", help="merge even if some points were measured by none")
    m.add_argument("--no-report", action="store_true", help="do not write the report")
    sub.add_parser("kernels", help="time the kernels one workload needs; write a calibration JSON for theory "
                   "(see `kernels --help`)", add_help=False, formatter_class=HelpFormatter, epilog=KERNELS_EXAMPLE)
    sub.add_parser("comms", help="collectives and a tensor-parallel layer under torchrun (see `comms --help`)",
                   add_help=False, epilog="example:\n  torchrun --standalone --nproc-per-node 2 -m bench comms "
                   "--help", formatter_class=HelpFormatter)
    sub.add_parser("kvmem", help="the KV-cache memory staircase CUDA's caching allocator makes, predicted from one "
                   "traced pass (see `kvmem --help`)", add_help=False, formatter_class=HelpFormatter,
                   epilog="example:\n  python -m bench kvmem --model d_model=1024,layers=8,heads=8 --dtype bf16 "
                   "--generated 200")
    return p


EXAMPLES = """examples:
  python -m bench run --sweep smoke --device cpu          # a two-minute check on this box
  python -m bench run --sweep default                     # what `make bench` runs
  python -m bench resume results/<run_id>                 # finish an interrupted run
  python -m bench run --sweep default --shard 0/4         # one of four shards (docs/cluster.md)
  python -m bench merge results/*-shard*of4 --out results/merged
  python -m bench run --sweep default --executor ray --address auto"""


def finish(run_dir: Path, no_report: bool) -> None:
    if not no_report:
        try:
            from analysis.report import write_report
        except ImportError as e:                  # e.g. the analysis extras not installed: said, never silent
            print(f"report not written ({e}); the run is complete: python -m analysis report {run_dir}",
                  file=sys.stderr)
        else:
            print(f"report: {write_report(run_dir)}", file=sys.stderr)
    print(run_dir)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["comms"]:                      # runs under torchrun, with its own options
        from bench.comms import main as comms_main
        return comms_main(argv[1:])
    if argv[:1] == ["kernels"]:                    # kernels for one workload -> a calibration JSON for theory
        from bench.kernels.cli import main as kernels_main
        return kernels_main(argv[1:])
    if argv[:1] == ["kvmem"]:                      # one traced trajectory -> predicted CUDA reserved memory
        from bench.kvmem import main as kvmem_main
        return kvmem_main(argv[1:])
    if argv[:1] == ["_point"] and 3 <= len(argv) <= 5:  # internal: one isolated point (bench/launch/child.py)
        from bench.launch.child import child_point
        gpu = argv[3] if len(argv) > 3 and argv[3] != "-" else None
        return child_point(Path(argv[1]), int(argv[2]), gpu, Path(argv[4]) if len(argv) > 4 else None)
    if argv[:1] == ["_ceilings"] and len(argv) == 4:   # internal: ceilings of an isolated CUDA run (launch/child.py)
        from bench.launch.child import child_ceilings
        return child_ceilings(Path(argv[1]), int(argv[2]), argv[3].split(","))
    a = build_parser().parse_args(argv)
    if a.command == "merge":                       # files only: no device, no torch
        from bench.run.merge import merge
        finish(merge(a.run_dirs, a.out, a.by, a.partial), a.no_report)
        return 0
    from bench.devices.select import get_device    # imports torch: only once there is work to do
    from bench.run import create, execute
    from bench.store.lock import run_lock
    from bench.store.signals import EXIT_TERMINATED, Terminated, terminate_as_exception
    from bench.sweep import load_run_sweep, load_sweep
    with terminate_as_exception():
        try:
            if a.command == "run":
                if a.threads < 1:
                    raise ValueError(f"--threads must be at least 1, got {a.threads}")
                from bench.launch.parallel import parse_gpus
                gpus = parse_gpus(a.gpus)
                device = get_device(a.device, a.threads, index=gpus[0] if gpus else 0, log=sys.stderr,
                                    isolated=a.isolate is not False)
                if gpus and device.kind != "cuda":
                    raise ValueError(f"--gpus {a.gpus}: no CUDA device here (this run measures on {device.kind}: "
                                     f"{device.name()}); --gpus needs CUDA")
                if gpus and a.isolate is False:
                    raise ValueError("--gpus needs CUDA and isolated points (leave --isolate on)")
                if gpus:                                 # before any ceilings: a missing GPU is refused up front
                    from bench.launch.parallel import check_gpus
                    check_gpus(gpus, device.device_count())
                sweep, path = load_sweep(a.sweep, device.kind)   # bad sweep files fail here, before anything runs
                shard, executor = None, None
                if a.shard is not None:
                    from bench.run.shard import parse_shard, shard_record
                    from bench.sweep import restrict
                    shard = shard_record(sweep, device.kind, *parse_shard(a.shard))
                    sweep = restrict(sweep, device.kind, shard["point_ids"])
                if a.executor == "ray":
                    from bench.launch.ray import executor_record
                    executor = executor_record(device, a.address, a.accelerator_type, gpus, a.isolate)
                elif a.address or a.accelerator_type:
                    raise ValueError("--address and --accelerator-type go with --executor ray")
                print(f"sweep {sweep.name}{'' if shard is None else f' shard {a.shard}'}: {len(sweep.points)} points on {device.name()} ({device.kind}, "
                      f"{device.threads} thread(s))", file=sys.stderr, flush=True)
                run_dir = create.create_run(sweep, path, device, a.out, profile=not a.no_profile,
                                            isolate=True if executor else a.isolate,
                                            gpus=gpus, kernels=not a.no_kernels, kernel_cache=a.kernel_cache,
                                            kernel_timing="cached" if a.cached_kernels else "paired",
                                            shard=shard, executor=executor)
            else:
                run_dir = a.run_dir
                if not (run_dir / "run.json").is_file():
                    raise ValueError(f"{run_dir} is not a run directory (no run.json)")
            with run_lock(run_dir):                      # one process per run directory
                if a.command == "resume":
                    sweep, meta = load_run_sweep(run_dir)
                    if execute.run_finished(run_dir, sweep, meta["device"]):
                        print(f"{run_dir} is finished: all {len(sweep.points)} points measured and the end of the "
                              f"run recorded; nothing to resume. Its report: python -m analysis report {run_dir}",
                              file=sys.stderr)
                        return 0
                    device = get_device(meta["device"], meta.get("threads", 1), index=(meta.get("gpus") or [0])[0],
                                        isolated=meta.get("isolate", False))
                    print(f"run directory: {run_dir}", file=sys.stderr, flush=True)
                execute.execute(run_dir, sweep, device)   # measures missing ceilings first
        except (KeyboardInterrupt, Terminated) as e:
            if a.command == "run" and "run_dir" not in locals():
                raise
            print(f"{'terminated' if isinstance(e, Terminated) else 'interrupted'}; finished points are kept. "
                  f"Resume with: python -m bench resume {run_dir}", file=sys.stderr)
            return EXIT_TERMINATED if isinstance(e, Terminated) else 130
    finish(run_dir, a.no_report)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main, errors=(ValueError,)))
