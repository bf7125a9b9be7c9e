"""What a run's claims rest on, kept compactly at the run's top level (committed with the run; `points/` is not):

- kernel_rounds.csv: every paired round's sample of every kernel a point ran, of each pass of its tiny model
  (the framework's) and of each yardstick (the box's speed in that round, bench/kernels/yardstick.py), with `used` = 1 for the rounds after the repeats the point's statistics use. compose.csv's
  medians are these samples' medians over the used rounds, so they can be re-derived (and re-scored) from here.
- remeasured.csv / remeasured_samples.csv: the measurement set each re-measured point did NOT keep
  (points/<id>.other.csv and .other.samples.csv), so a reader can see both sets.
Samples are written to 6 significant digits (a sample's own spread is percent-level).
"""
from pathlib import Path

from bench.store.files import atomic_write, csv_text, read_csv

ROUND_COLUMNS = ["point_id", "kind", "name", "round", "used", "sample_s"]
DISPATCH = "dispatch"          # the dispatch probe's name among the yardsticks (bench/kernels/yardstick.py)
ROUNDS_FILE, REMEASURED_FILE, REMEASURED_SAMPLES_FILE = "kernel_rounds.csv", "remeasured.csv", "remeasured_samples.csv"


def round_rows(point_id: str, samples: dict[str, list[float]], tiny_times: list[list[float]], used: list[int],
               yardsticks: dict[str, list[float]] | None = None) -> list[dict]:
    """kind `kernel`: name = kernel_id; kind `tiny`: name = prefill or decode:<step> of the tiny model; kind
    `yardstick`: name = the yardstick's kernel id or `dispatch` (bench/kernels/yardstick.py)."""
    keep = set(used)
    row = lambda kind, name, i, x: {"point_id": point_id, "kind": kind, "name": name, "round": i,
                                    "used": int(i in keep), "sample_s": f"{x:.6g}"}
    rows = [row("kernel", kid, i, x) for kid, xs in samples.items() for i, x in enumerate(xs)]
    rows += [row("yardstick", name, i, x) for name, xs in (yardsticks or {}).items() for i, x in enumerate(xs)]
    for i, passes in enumerate(tiny_times):
        rows += [row("tiny", "prefill" if j == 0 else f"decode:{j - 1}", i, t) for j, t in enumerate(passes)]
    return rows


def _concat(files: list[Path]) -> str | None:
    header, body = None, []
    for f in files:
        lines = f.read_text().splitlines(keepends=True)
        if lines:
            header = header or lines[0]
            body += lines[1:]
    return None if header is None else header + "".join(body)


def assemble_archive(run_dir: Path, point_ids: list[str], done) -> None:
    """The run-level files above from the finished points' files, in sweep order."""
    pts = run_dir / "points"
    rounds = [pts / f"{pid}.rounds.csv" for pid in point_ids if done(run_dir, pid)]
    rows = [r for f in rounds if f.exists() for r in read_csv(f)]
    if rows:
        atomic_write(run_dir / ROUNDS_FILE, csv_text(rows, ROUND_COLUMNS))
    for name, suffix in ((REMEASURED_FILE, ".other.csv"), (REMEASURED_SAMPLES_FILE, ".other.samples.csv")):
        text = _concat([pts / f"{pid}{suffix}" for pid in point_ids if (pts / f"{pid}{suffix}").exists()])
        if text is not None:
            atomic_write(run_dir / name, text)
