"""Several calibrations as one: `python -m theory.calibration.merge a.json b.json --out merged.json`.

Calibrations of other models, merged, let theory predict a model none of them is (issue 21). They must share
the box's identity (device name, torch, threads), dtype, attention and cache: kernels from another box or
implementation are not the same kernels, so a mismatch is refused in one line. Each pass keeps the model it was
measured on (format-2 files: their top-level model), so theory sizes its instances and fits the framework cost over
the models' depths. The merged file's `model` is the first one's; `models` lists all.
"""
import argparse
import json
import sys
from pathlib import Path

from theory.calibration.predict import FORMAT, load_calibration
from theory.errors import TheoryError

MUST_AGREE = ("dtype", "attention", "cache", "device", "device_name", "torch", "threads")


def merge(cals: list[dict]) -> dict:
    if not cals:
        raise TheoryError("nothing to merge")
    for c in cals:
        if c.get("format") != FORMAT:
            raise TheoryError(f"only format {FORMAT!r} calibrations merge (re-run `python -m bench kernels`)")
    first = cals[0]
    for key in MUST_AGREE:
        seen = sorted({str(c.get(key)) for c in cals})
        if len(seen) > 1:
            raise TheoryError(f"calibrations differ in {key} ({', '.join(seen)}): kernels from another box or "
                              f"implementation do not merge")
    passes, workloads, models = [], [], []
    for c in cals:
        models.append(c["model"])
        passes += [{**p, "model": p.get("model") or c["model"]} for p in c["passes"]]
        workloads += [{**w, "model": w.get("model", c["model"].get("name"))} for w in c["workloads"]]
    states = sorted({c.get("cache_state") for c in cals})
    return {**first, "cache_state": states[0] if len(states) == 1 else "mixed", "models": models,
            "size_basis": min(c.get("size_basis", 1) for c in cals),     # any older sizes: all recomputed
            "workloads": workloads, "passes": passes,
            "merged_from": [c.get("utc_time") for c in cals],
            "wall_s": sum(c.get("wall_s") or 0 for c in cals)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m theory.calibration.merge", description=__doc__.splitlines()[0])
    ap.add_argument("calibrations", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)
    try:
        cal = merge([load_calibration(str(p)) for p in a.calibrations])
    except TheoryError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    a.out.write_text(json.dumps(cal, indent=2, sort_keys=True) + "\n")
    print(a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
