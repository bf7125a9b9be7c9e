"""Kernels for one sweep point, saved beside its measurements: points/<id>.compose.csv (op instances × kernel
time per pass), points/<id>.framework.csv (the framework's own cost per pass), points/<id>.kernels.csv (the
distinct kernels it ran); assembled into the run's compose.csv, framework.csv and kernels.csv."""
import json
import time
from pathlib import Path

from bench.kernels import kernel_cache_dir
from bench.kernels.cache import KERNEL_COLUMNS, KernelCache
from bench.kernels.framework import FRAMEWORK_COLUMNS, framework_rows
from bench.kernels.plan import COMPOSE_COLUMNS, compose_rows, passes
from bench.kernels.rounds import ROUND_COLUMNS, assemble_archive
from bench.modes import mode
from bench.store.files import atomic_write, csv_text, read_csv
from theory.calibration.family import unplanned_reason
from theory.memory import streamed_bytes

FILES = {"compose": COMPOSE_COLUMNS, "framework": FRAMEWORK_COLUMNS, "kernels": KERNEL_COLUMNS}


def llc_of(device) -> int | None:
    info = device.info()                 # CUDA: L2 from the device's own properties (through the device seam)
    return info.get("l2_cache_bytes") if device.kind == "cuda" else info.get("llc_bytes")


# A model stays resident only well inside the effective LLC. That size (bench/ceilings.py effective_llc_bytes) is
# where one buffer read again and again has already fallen halfway to DRAM's rate, and a model's ~30 weight
# tensors share the cache with its activations, the KV cache, the allocator and the interpreter. Observed here:
# d=128 L=4 (7.3 MB streamed per pass, 87% of an 8 MiB effective LLC) ran at DRAM speed: its decode step measured
# +21% over kernels timed warm, -2% and -6% over kernels timed with rotated copies (three paired default runs of
# 23 Nov; the last is results/20261123T152622Z). Half is a choice at that one point, not a fit over many.
RESIDENT_FRACTION = 0.5


def cache_state(spec, batch: int, tokens: int, dtype: str, llc_bytes: int | None) -> str:
    """dram unless what the model streams per pass fits RESIDENT_FRACTION of the last-level cache.
    llc_bytes: the effective size measured with the ceilings where there is one (bench.ceilings.llc_sweep)."""
    fits = llc_bytes and streamed_bytes(spec, batch, tokens, dtype) <= RESIDENT_FRACTION * llc_bytes
    return "llc" if fits else "dram"


# Near the threshold the rule is a coin toss between runs: on one box the effective LLC came out 12 MiB in one
# `bench kernels` run and 16 MiB in the next (x1.33), which put a model streaming 7.5 MiB on either side of "half
# of it" and moved its predicted TPOT 3x (1.733 against 0.573 ms; measured ~0.7; issue 26). A model within a factor
# BOUNDARY_BAND of the threshold, either way, is near it. 1.5 covers that x1.33 with some room: a choice, not a fit.
BOUNDARY_BAND = 1.5


def cache_margin(spec, batch: int, tokens: int, dtype: str, llc_bytes: int | None) -> dict | None:
    """What the rule compared, for the record: bytes streamed per pass, the threshold (RESIDENT_FRACTION of the
    effective LLC), streamed / threshold, the state the rule gives, and whether it is within BOUNDARY_BAND of the
    threshold either way. None without an LLC figure (then every model is dram)."""
    if not llc_bytes:
        return None
    streamed, threshold = streamed_bytes(spec, batch, tokens, dtype), int(RESIDENT_FRACTION * llc_bytes)
    ratio = streamed / threshold
    return {"streamed_bytes": streamed, "threshold_bytes": threshold, "llc_effective_bytes": int(llc_bytes),
            "streamed_over_threshold": ratio, "rule_state": cache_state(spec, batch, tokens, dtype, llc_bytes),
            "near_boundary": 1 / BOUNDARY_BAND <= ratio <= BOUNDARY_BAND}


def point_kernels(p, point_id: str, device, dtype: str, kcache: KernelCache) -> dict[str, list[dict]]:
    spec = p.spec()
    t0 = time.perf_counter()
    state = cache_state(spec, p.batch, p.prompt_len + p.generated, dtype, kcache.fits_bytes)
    shapes = passes(spec, p.batch, p.prompt_len, p.generated, dtype, p.attention, p.cache, p.max_cache_len)
    compose = compose_rows(point_id, shapes, kcache, state)
    if mode(p.execution).compiled:             # compiled: extern kernels + a tiny compiled model
        from bench.kernels.compiled import compiled_framework_rows, extern_rows
        compose = extern_rows(compose, p.execution)
        framework = compiled_framework_rows(point_id, spec, device, kcache, p.batch, p.prompt_len, p.generated,
                                            dtype, p.attention, p.cache, p.max_cache_len, p.execution)
    else:
        framework = framework_rows(point_id, spec, device, kcache, p.batch, p.prompt_len, p.generated, dtype,
                                   p.attention, p.cache, p.max_cache_len)
    used = {r["kernel_id"] for r in compose}
    kernels = [r for kid, r in kcache.rows.items() if kid in used]
    for r in compose:
        r["kernels_wall_s"] = time.perf_counter() - t0
    return {"compose": compose, "framework": framework, "kernels": kernels}


def kernel_file(run_dir: Path, point_id: str, kind: str) -> Path:
    return run_dir / "points" / f"{point_id}.{kind}.csv"


def save_point_kernels(run_dir: Path, point_id: str, parts: dict[str, list[dict]]) -> None:
    (run_dir / "points").mkdir(exist_ok=True)
    for kind, cols in FILES.items():
        atomic_write(kernel_file(run_dir, point_id, kind), csv_text(parts[kind], cols + (
            ["kernels_wall_s"] if kind == "compose" else [])))
    if parts.get("rounds"):                     # paired points: every round's samples (bench/kernels/rounds.py)
        atomic_write(kernel_file(run_dir, point_id, "rounds"), csv_text(parts["rounds"], ROUND_COLUMNS))


def drop_point_kernels(run_dir: Path, point_id: str) -> None:
    """A point's kernel files removed before its measurements are replaced: interrupted in between, the point has
    no composed prediction rather than one from another measurement."""
    for kind in [*FILES, "rounds"]:
        kernel_file(run_dir, point_id, kind).unlink(missing_ok=True)


def assemble_kernels(run_dir: Path, point_ids: list[str], done) -> None:
    """Run-level compose.csv, framework.csv and kernels.csv. kernels.csv has one row per point and kernel, led by
    point_id: a paired run times the same kernel again at every point, and a compiled point takes its extern
    kernels from the per-box cache, so one row per kernel would show only the first point's timing and source."""
    for kind in FILES:
        rows = []
        for pid in point_ids:
            f = kernel_file(run_dir, pid, kind)
            if not (f.exists() and done(run_dir, pid)):
                continue
            rows += [{"point_id": pid, **r} if kind == "kernels" else r for r in read_csv(f)]
        if rows:
            atomic_write(run_dir / f"{kind}.csv", csv_text(rows, list(rows[0].keys())))
    assemble_archive(run_dir, point_ids, done)


def run_kernel_cache(run_dir: Path, device) -> KernelCache:
    """The per-box cache run.json names (kernel_cache_dir; older runs: beside the runs, results/kernel-cache/),
    shared by every run on this box and by `bench kernels`. Whether a point's weights stay cached is judged against
    the effective LLC its run measured (run.json ceilings).
    kcache.paired: the run times its eager points' kernels in rounds beside the model (run.json kernel_timing)."""
    path = run_dir / "run.json"
    meta = json.loads(path.read_text()) if path.exists() else {}
    kcache = KernelCache(Path(meta.get("kernel_cache_dir") or kernel_cache_dir(run_dir.parent)), device, llc_of(device))
    kcache.fits_bytes = effective_llc_of(run_dir) or kcache.llc_bytes
    kcache.paired = meta.get("kernel_timing") == "paired"
    return kcache


def paired_kernels(p, point_id: str, device, kcache: KernelCache | None):
    """A PairedKernels for an eager point of a run that times kernels in rounds; None otherwise (compiled points
    and runs with --cached-kernels compose from the per-box cache after the point)."""
    if (kcache is None or not getattr(kcache, "paired", False) or not mode(p.execution).pairs_kernels
            or not plans_family(p.spec())):
        return None
    from bench.kernels.paired import PairedKernels
    dtype = p.resolved_dtype(device.kind)
    state = cache_state(p.spec(), p.batch, p.prompt_len + p.generated, dtype, kcache.fits_bytes)
    return PairedKernels(p, point_id, device, dtype, state, kcache.llc_bytes)


def save_paired_kernels(run_dir: Path, point_id: str, rows: list[dict], paired) -> None:
    """For a point that measured ok: the composed prediction from its rounds, saved before its measurements."""
    try:
        if rows and rows[0].get("status") == "ok" and paired.used:
            save_point_kernels(run_dir, point_id, paired.parts(paired.used))
    finally:
        paired.close()


def effective_llc_of(run_dir: Path) -> int | None:
    path = run_dir / "run.json"
    if not path.exists():
        return None
    detail = json.loads(path.read_text()).get("ceilings_detail", {})
    sizes = [d.get("llc_effective_bytes") for d in detail.values() if d.get("llc_effective_bytes")]
    return min(sizes) if sizes else None


def plans_family(spec) -> bool:
    """The kernel plan (bench/kernels/shapes.py) models Llama-structured layers: rotary, a gated MLP, no experts,
    biases, extra norms or learned positions. Other families get no composed prediction rather than a wrong one.
    theory/calibration/family.py holds the rule, so theory refuses the same models on a calibration."""
    return unplanned_reason(spec) is None


def not_composed_note(p, kernels_asked: bool, status: str) -> str:
    """The progress line's word for a point whose kernels were asked for but are not planned: "" otherwise.
    The report and summary.json say the same per point (analysis/uncomposed.py)."""
    if not kernels_asked or status != "ok":
        return ""
    why = unplanned_reason(p.spec())
    return "" if why is None else f"  not composed: no kernel plan for its family ({why})"


def measure_point_kernels(run_dir: Path, p, point_id: str, device, rows: list[dict], kcache: KernelCache) -> None:
    """For a point that measured ok: its kernels, saved before the point's measurements mark it done."""
    if not rows or rows[0].get("status") != "ok":
        return
    if not plans_family(p.spec()):             # refused, not guessed: no composed prediction for this point
        return
    save_point_kernels(run_dir, point_id, point_kernels(p, point_id, device, rows[0]["dtype"], kcache))
