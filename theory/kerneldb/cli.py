"""`python -m theory --hardware <preset> --kernel-db aiconfigurator[:backend[@version]]`: the pass (and, with
--generated, TTFT and TPOT) composed from a published kernel database, beside the datasheet roofline."""
import json
import sys

from theory.errors import TheoryError
from theory.hardware import load_hardware
from theory.kerneldb.compose import DEFAULT_HOST_DISPATCH_S, OpRow, compose
from theory.kerneldb.db import DB_DTYPES, Database
from theory.kerneldb.spec import parse_spec, system_for
from theory.hfconfig import load_model
from theory.ops import OP_GROUPS, Workload
from theory.request import sum_decode_s
from theory.roofline import predict

GRAPHS_NOTE = "graphs: kernels summed, as the database timed them (CUDA-graph replays)"


def host_dispatch(a) -> tuple[float, str]:
    if a.runtime != "eager":
        return 0.0, GRAPHS_NOTE
    if a.host_ceilings:
        hw = load_hardware(a.host_ceilings)
        if hw.launch_overhead_s <= 0:
            raise TheoryError(f"{a.host_ceilings} has no measured launch_overhead_s")
        return hw.launch_overhead_s, (f"eager: max(host {hw.launch_overhead_s * 1e6:.2f} µs measured "
                                      f"in {a.host_ceilings}, kernel) per op instance")
    return DEFAULT_HOST_DISPATCH_S, (f"eager: max(host {DEFAULT_HOST_DISPATCH_S * 1e6:.0f} µs, an assumed default, "
                                     "not measured (theory/kerneldb/compose.py), kernel) per op instance")


class Composer:
    def __init__(self, a):
        self.spec = parse_spec(a.kernel_db)
        self.system = system_for(a.hardware)
        self.model, self.hw = load_model(a.model), load_hardware(a.hardware)
        self.dtype = a.dtype or "bf16"
        if self.dtype not in DB_DTYPES or (a.kv_dtype and a.kv_dtype not in DB_DTYPES):
            raise TheoryError(f"the kernel database times {', '.join(DB_DTYPES)} only, not {self.dtype}")
        self.db = Database(self.spec, self.system, self.dtype)
        self.a, self.runtime = a, a.runtime
        self.host_s, self.runtime_note = host_dispatch(a)

    def workload(self, phase: str, **kw) -> Workload:
        a = self.a
        extra = {k: getattr(a, k) for k in ("kv_dtype", "attention", "kv_update", "logits") if getattr(a, k) is not None}
        return Workload(phase=phase, batch=a.batch, dtype=self.dtype, **extra, **kw)

    def pass_(self, w: Workload):
        pred = predict(self.model, self.hw, w, "max", self.a.tp)
        return pred, compose(pred, self.db, self.runtime, self.host_s, self.spec.backend)

    def request(self, prompt: int, generated: int) -> dict:
        pre = lambda: sum(r.time_s for r in self.pass_(self.workload("prefill", prompt_len=prompt))[1])
        ds_pre = predict(self.model, self.hw, self.workload("prefill", prompt_len=prompt), "max", self.a.tp).time_s
        step = lambda c: sum(r.time_s for r in self.pass_(self.workload("decode", context_len=c))[1])
        ds_step = lambda c: predict(self.model, self.hw, self.workload("decode", context_len=c), "max", self.a.tp).time_s
        n = generated - 1
        db_tpot = sum_decode_s(step, prompt, n) / n if n else 0.0
        ds_tpot = sum_decode_s(ds_step, prompt, n) / n if n else 0.0
        ttft = pre()
        out = {"generated": generated, "decode_steps": n,
               "time_to_first_token_s": {"datasheet": ds_pre, "kernel_db": ttft, "ratio": ttft / ds_pre},
               "time_per_output_token_s": {"datasheet": ds_tpot, "kernel_db": db_tpot,
                                           "ratio": db_tpot / ds_tpot if ds_tpot else None}}
        out["request_time_s"] = {"datasheet": ds_pre + n * ds_tpot, "kernel_db": ttft + n * db_tpot}
        return out


def groups(rows: list[OpRow]) -> dict:
    out = {}
    for g in OP_GROUPS:
        mine = [r for r in rows if r.group == g]
        if mine:
            ds, db = sum(r.datasheet_s for r in mine), sum(r.time_s for r in mine)
            out[g] = {"datasheet_s": ds, "kernel_db_s": db, "ratio": db / ds if ds else None}
    return out


def kernel_db_main(a) -> int:
    c = Composer(a)
    decode = a.phase == "decode"
    kw = {"context_len": a.prompt_len if a.context_len is None else a.context_len} if decode \
        else {"prompt_len": a.prompt_len}
    pred, rows = c.pass_(c.workload(a.phase, **kw))
    total, ds_total = sum(r.time_s for r in rows), pred.time_s
    flags = sorted({f"{r.name}: {r.how}" + (f" ({r.note})" if r.note else "") for r in rows
                    if r.how not in ("exact",) or r.note})
    out = {"model": c.model.name, "hardware": c.hw.id, "kernel_db": {
               "spec": c.spec.label(), "system": c.system, "backend": c.spec.backend, "versions": c.db.versions,
               "derived_bandwidth_bytes_per_s": c.db.memory_bandwidth_bytes_per_s(),
               "bandwidth_source": "median over generation-attention rows reading >= 1 GiB of K+V (bf16)",
               "kernel_floor_s": c.db.kernel_floor_s(),
               "floor_source": "median of the 20 fastest GEMM calls in the table"},
           "runtime": a.runtime, "runtime_note": c.runtime_note, "host_dispatch_s": c.host_s,
           "phase": a.phase, "batch": a.batch, **kw, "dtype": c.dtype, "tp": a.tp,
           "time_s": total, "datasheet_time_s": ds_total, "ratio": total / ds_total,
           "groups": groups(rows), "flags": flags,
           "ops": [{"name": r.name, "group": r.group, "count": r.count, "source": r.source, "shape": r.shape,
                    "datasheet_s": r.datasheet_s, "kernel_s": r.device_s, "time_s": r.time_s, "how": r.how,
                    "note": r.note} for r in rows],
           "datasheet": pred.to_json(a.reserve_fraction)}
    if a.generated is not None:
        out["request"] = c.request(a.prompt_len, a.generated)
    if a.format == "json":
        print(json.dumps(out, indent=2))
    else:
        print(render(out))
    return 0


def render(out: dict) -> str:
    k = out["kernel_db"]
    where = f"prompt {out['prompt_len']} tokens" if out["phase"] == "prefill" else f"context {out['context_len']} tokens"
    lines = [f"{out['model']} on {out['hardware']} from {k['spec']} ({k['system']}, "
             + ", ".join(f"{t} {v}" for t, v in k["versions"].items()) + f"): {out['phase']}, batch {out['batch']}, "
             f"{where}, {out['dtype']}, tp {out['tp']}",
             f"runtime    {out['runtime_note']}",
             f"derived    {k['derived_bandwidth_bytes_per_s'] / 1e9:.0f} GB/s ({k['bandwidth_source']}); "
             f"per-kernel floor {k['kernel_floor_s'] * 1e6:.2f} µs ({k['floor_source']})", "",
             f"{'op':<20}{'count':>6}  {'source':<16}{'datasheet ms':>13}  {'db ms':>10}  {'ratio':>7}  {'how':<13}shape"]
    for o in out["ops"]:
        ratio = f"{o['time_s'] / o['datasheet_s']:.2f}" if o["datasheet_s"] else "-"
        lines.append(f"{o['name']:<20}{o['count']:>6}  {o['source']:<16}{o['datasheet_s'] * 1e3:>13.4f}  "
                     f"{o['time_s'] * 1e3:>10.4f}  {ratio:>7}  {o['how']:<13}{o['shape']}")
    lines.append("")
    for g, v in out["groups"].items():
        r = "-" if v["ratio"] is None else f"{v['ratio']:.2f}x"
        lines.append(f"{g:<10} datasheet {v['datasheet_s'] * 1e3:10.4f} ms   kernel db {v['kernel_db_s'] * 1e3:10.4f} ms   {r}")
    lines.append(f"{'total':<10} datasheet {out['datasheet_time_s'] * 1e3:10.4f} ms   kernel db "
                 f"{out['time_s'] * 1e3:10.4f} ms   {out['ratio']:.2f}x")
    if "request" in out:
        r = out["request"]
        for name, key in (("TTFT", "time_to_first_token_s"), ("TPOT", "time_per_output_token_s")):
            v = r[key]
            lines.append(f"{name:<10} datasheet {v['datasheet'] * 1e3:10.4f} ms   kernel db {v['kernel_db'] * 1e3:10.4f} ms"
                         + (f"   {v['ratio']:.2f}x" if v["ratio"] else ""))
    if out["flags"]:
        lines += ["", "flags:"] + [f"  {f}" for f in out["flags"]]
    return "\n".join(lines)
