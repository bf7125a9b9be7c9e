"""Our kernels beside a published database's at the same shapes: is this GPU like the one the database measured?

`python -m bench kernels --device cuda` writes a calibration (every op's kernel time per pass, theory's op names);
this sets each op the database also times (db:gemm, db:attention, db:comm, db:moe) beside the database's time for
the same instance shape (theory/kerneldb/compose.py maps both), one row per (pass, op), and the median ratio per
source. Ops the database does not time (norms, adds, ...) are left out: their database figure is derived, not
measured. Reads only JSON and the database's tables; never torch.

    python -m bench.kernels.vsdb --calibration results/<run>/calibration.json --model llama-2-7b \
        --hardware h100-sxm-80gb --kernel-db aiconfigurator:vllm [--format json]
"""
import json
import statistics
import sys

from theory.cliutil import OneLineParser, run_main
from theory.errors import TheoryError
from theory.hardware import load_hardware
from theory.kerneldb import parse_spec, system_for
from theory.kerneldb.compose import compose
from theory.kerneldb.db import Database
from theory.hfconfig import load_model
from theory.ops import Workload
from theory.roofline import predict

SHAPE_FIELDS = ("hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
                "intermediate_size", "vocab_size")


def pair_rows(cal: dict, model, hw_id: str, spec_text: str) -> list[dict]:
    diff = [k for k in SHAPE_FIELDS if k in cal.get("model", {}) and cal["model"][k] != getattr(model, k)]
    if diff:
        raise TheoryError(f"the calibration was measured for {cal['model'].get('name')}, not {model.name} "
                          f"({', '.join(diff)} differ)")
    spec = parse_spec(spec_text)
    db = Database(spec, system_for(hw_id), cal.get("dtype", "bf16"))
    hw = load_hardware(hw_id)
    out = []
    for p in cal["passes"]:
        kw = {"prompt_len": p["prompt_len"]} if p["phase"] == "prefill" else {"context_len": p["context_len"]}
        w = Workload(phase=p["phase"], batch=p["batch"], dtype=db.dtype, **kw)     # fused, paged: the db's way
        for r in compose(predict(model, hw, w), db, "graphs", backend=spec.backend):
            ours = p["ops"].get(r.name)
            if ours is None or not r.source.startswith("db:") or not r.count:
                continue
            db_s = r.device_s / r.count
            out.append({"phase": p["phase"], "batch": p["batch"], "tokens": next(iter(kw.values())),
                        "op": r.name, "source": r.source, "shape": r.shape, "ours_s": ours["kernel_s"],
                        "db_s": db_s, "ratio": ours["kernel_s"] / db_s, "db_how": r.how})
    return out


def summary(rows: list[dict]) -> dict:
    by: dict[str, list[float]] = {}
    for r in rows:
        by.setdefault(r["source"], []).append(r["ratio"])
    return {s: {"ops": len(v), "median_ratio": statistics.median(v), "min_ratio": min(v), "max_ratio": max(v)}
            for s, v in sorted(by.items())}


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="python -m bench.kernels.vsdb", description=__doc__.split("\n\n")[0])
    p.add_argument("--calibration", required=True, help="a calibration JSON from `python -m bench kernels`")
    p.add_argument("--model", required=True, help="the model it was measured for (preset or config.json)")
    p.add_argument("--hardware", required=True, help="the preset whose database system to compare with")
    p.add_argument("--kernel-db", default="aiconfigurator", help="aiconfigurator[:backend[@version]]")
    p.add_argument("--format", choices=("table", "json"), default="table")
    a = p.parse_args(argv)
    from theory.calibration import load_calibration
    cal = load_calibration(a.calibration)
    rows = pair_rows(cal, load_model(a.model), a.hardware, a.kernel_db)
    if not rows:
        raise TheoryError("no op of the calibration is one the database times")
    out = {"calibration": a.calibration, "device_name": cal.get("device_name"), "kernel_db": a.kernel_db,
           "hardware": a.hardware, "rows": rows, "summary": summary(rows)}
    if a.format == "json":
        print(json.dumps(out, indent=2))
        return 0
    print(f"{cal.get('device_name')} (ours) vs {a.kernel_db} on {a.hardware}: kernel time per call, ratio ours/db")
    print(f"{'phase':<8}{'batch':>6}{'tokens':>8}  {'op':<16}{'source':<14}{'ours µs':>10}{'db µs':>10}{'ratio':>7}  shape")
    for r in rows:
        print(f"{r['phase']:<8}{r['batch']:>6}{r['tokens']:>8}  {r['op']:<16}{r['source']:<14}{r['ours_s'] * 1e6:>10.2f}"
              f"{r['db_s'] * 1e6:>10.2f}{r['ratio']:>7.2f}  {r['shape']} ({r['db_how']})")
    for s, v in out["summary"].items():
        print(f"{s:<14} {v['ops']} ops, median ours/db {v['median_ratio']:.2f} (range {v['min_ratio']:.2f}-{v['max_ratio']:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
