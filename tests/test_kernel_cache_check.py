"""The per-box kernel cache is reused only after re-timing a few sentinel kernels from it: a cache measured
when the box was 2x slower is ignored (its kernels re-measured, the file rewritten) and the run says so.
A fake timer stands in for the microbenchmark, so these tests time nothing."""
import csv
import json

import pytest

import bench.kernels.cache as cache_mod
from bench.devices.cpu import CpuDevice
from bench.kernels.microbench import KernelTime
from bench.kernels.cache import kernel_id
from bench.kernels.plan import compose_rows, passes
from bench.kernels.shapes import pass_kernels
from bench.kernels.validate import kind_of
from bench.sweep import Point

POINT = Point(hidden_size=64, num_hidden_layers=2, head_dim=16, kv_group=2, vocab_size=256, batch=1,
              prompt_len=8, generated=3)


def true_s(k) -> float:
    """A deterministic 'true' kernel time, different per kernel, each at least the 50 µs a sentinel needs."""
    n = 1
    for _, v in k.shape:
        n *= v if isinstance(v, int) else 1
    return 50e-6 + 1e-9 * n


def fake_timer(scale: float, calls: list):
    def t(k, device, state, llc_bytes, budget_s=0.06):
        calls.append(k)
        m = scale * true_s(k)
        return KernelTime(m, 0.98 * m, 1.02 * m, 7, True, state, 1, 0)
    return t


def shapes():
    return passes(POINT.spec(), POINT.batch, POINT.prompt_len, POINT.generated, "fp32", "sdpa", "dynamic", None)


KERNELS = {kernel_id(k, "llc"): k for s in shapes() for _, _, k in pass_kernels(s)}


def compose(tmp_path, monkeypatch, scale: float):
    calls = []
    monkeypatch.setattr(cache_mod, "time_kernel", fake_timer(scale, calls))
    kc = cache_mod.KernelCache(tmp_path, CpuDevice(1), 2**25)
    return kc, compose_rows("p", shapes(), kc, "llc"), calls


def test_a_cache_from_a_slower_box_is_not_reused(tmp_path, monkeypatch):
    compose(tmp_path, monkeypatch, 2.0)                         # the cache, measured when the box was 2x slower
    kc, rows, calls = compose(tmp_path, monkeypatch, 1.0)       # the box now
    for r in rows:                                              # every kernel's time is today's, not the cache's
        k = kc.rows[r["kernel_id"]]
        assert k["source"] == "measured" and float(k["median_s"]) == pytest.approx(true_s(KERNELS[r["kernel_id"]]))
    check = kc.checks["fp32"]
    assert check["validated"] is False and check["action"].startswith("ignored")
    assert 1 <= len(check["sentinels"]) <= 3
    assert all(s["ratio"] == pytest.approx(0.5) for s in check["sentinels"])
    assert {kind_of(s["impl"]) for s in check["sentinels"]} == {"matmul", "attention", "elementwise"}
    # the file now holds the fresh rows only
    with open(next(tmp_path.glob("*.csv")), newline="") as f:
        saved = list(csv.DictReader(f))
    assert saved and all(float(r["median_s"]) == pytest.approx(true_s(KERNELS[r["kernel_id"]])) for r in saved)
    assert all(r["cache_check"].startswith("stale") for r in kc.rows.values())


def test_a_cache_within_tolerance_is_reused_and_says_so(tmp_path, monkeypatch):
    _, first, _ = compose(tmp_path, monkeypatch, 1.05)          # 5% apart: inside the microbenchmark's ±10%
    kc, rows, calls = compose(tmp_path, monkeypatch, 1.0)
    assert len(calls) == len(kc.checks["fp32"]["sentinels"]) == 3    # only the sentinels were timed
    assert [r["kernel_s"] for r in rows] == [r["kernel_s"] for r in first]
    check = kc.checks["fp32"]
    assert check["validated"] is True and check["action"] == "reused"
    assert check["tolerance_rel"] == pytest.approx(0.10)
    assert all(s["ratio"] == pytest.approx(1 / 1.05) for s in check["sentinels"])
    assert all(r["source"] == "cache" and r["cache_check"].startswith("validated") for r in kc.rows.values())


def test_an_empty_or_absent_cache_needs_no_check(tmp_path, monkeypatch):
    kc, rows, calls = compose(tmp_path, monkeypatch, 1.0)
    assert kc.checks["fp32"]["validated"] is None and kc.checks["fp32"]["sentinels"] == []
    assert len(calls) == len({r["kernel_id"] for r in rows})


def tiny_config(tmp_path, monkeypatch):
    import bench.kernels.calibrate as cli_mod          # the framework's tiny model is not what is tested here
    monkeypatch.setattr(cli_mod, "framework_rows", lambda *a, **kw: [
        {"phase": ph, "step": st, "framework_s": 1e-5} for ph, st in [("prefill", 0), ("decode", 0), ("decode", 1)]])
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                               "num_key_value_heads": 2, "head_dim": 16, "intermediate_size": 176,
                               "vocab_size": 256, "max_position_embeddings": 512}))
    return cfg


def test_bench_kernels_records_the_check(tmp_path, monkeypatch):
    from bench.kernels.cli import main as kernels_main
    cfg = tiny_config(tmp_path, monkeypatch)
    args = ["--model", str(cfg), "--prompt-len", "8", "--generated", "3", "--kernel-cache", str(tmp_path / "kc")]
    monkeypatch.setattr(cache_mod, "time_kernel", fake_timer(2.0, []))
    assert kernels_main(args + ["--out", str(tmp_path / "a.json")]) == 0
    monkeypatch.setattr(cache_mod, "time_kernel", fake_timer(1.0, []))
    assert kernels_main(args + ["--out", str(tmp_path / "b.json")]) == 0
    k = json.loads((tmp_path / "b.json").read_text())["kernels"]
    assert k["reused"] == 0 and k["cache_check"]["fp32"]["validated"] is False


def test_bench_kernels_calibrates_every_batch_and_prompt(tmp_path, monkeypatch):
    from bench.kernels.cli import main as kernels_main
    from theory.calibration import FORMAT
    cfg = tiny_config(tmp_path, monkeypatch)
    monkeypatch.setattr(cache_mod, "time_kernel", fake_timer(1.0, []))
    out = tmp_path / "cal.json"
    assert kernels_main(["--model", str(cfg), "--batch", "1", "2", "--prompt-len", "8", "12", "--generated", "3",
                         "--out", str(out), "--kernel-cache", str(tmp_path / "kc")]) == 0
    cal = json.loads(out.read_text())
    assert cal["format"] == FORMAT and len(cal["workloads"]) == 4 and len(cal["passes"]) == 4 * 3
    assert {(p["batch"], p["prompt_len"]) for p in cal["passes"]} == {(1, 8), (1, 12), (2, 8), (2, 12)}
    q = [p["ops"]["q_proj"] for p in cal["passes"] if p["phase"] == "prefill"]
    assert sorted(o["work"] for o in q) == [2 * n * 64 * 64 for n in (8, 12, 16, 24)]   # 2·tokens·d·d FLOPs
    assert all(o["work_unit"] == "flops" for o in q)
    assert cal["passes"][1]["ops"]["kv_update"]["work_unit"] == "bytes"


def test_a_stale_sentinel_is_timed_once_and_its_fresh_time_is_the_row(tmp_path, monkeypatch):
    """Asked for directly (no need() first), the one cached kernel is its own sentinel: the fresh time the check
    took is the row, not a second measurement (which used to disagree with the check it recorded)."""
    k = next(iter(KERNELS.values()))
    monkeypatch.setattr(cache_mod, "time_kernel", fake_timer(2.0, []))
    cache_mod.KernelCache(tmp_path, CpuDevice(1), 2**25).get(k, "llc")
    calls = []
    monkeypatch.setattr(cache_mod, "time_kernel", fake_timer(1.0, calls))
    kc = cache_mod.KernelCache(tmp_path, CpuDevice(1), 2**25)
    row = kc.get(k, "llc")
    assert len(calls) == 1 and kc.checks["fp32"]["validated"] is False
    assert row["median_s"] == kc.checks["fp32"]["sentinels"][0]["new_median_s"]


def cache_file(tmp_path) -> "Path":
    return cache_mod.KernelCache(tmp_path, CpuDevice(1), 2**25)._path("fp32")


@pytest.mark.parametrize("damage,needle", [
    ("text", "no median_s column"),
    ("bytes", "not UTF-8 text"),
    ("short", "fewer fields than the header"),
    ("nan", "median_s 'nan' is not a positive time"),
])
def test_a_damaged_cache_is_ignored_named_in_one_line_and_rewritten(tmp_path, monkeypatch, capsys, damage, needle):
    compose(tmp_path, monkeypatch, 1.0)
    path = cache_file(tmp_path)
    text = path.read_text()
    if damage == "text":                                    # a cache CSV without median_s (once a KeyError)
        path.write_text(text.replace("median_s", "median"))
    elif damage == "bytes":                                 # random bytes (once "'utf-8' codec can't decode")
        path.write_bytes(bytes([0xfe, 0xff, 0x00, 0x9c]) * 64)
    elif damage == "short":
        path.write_text(text.splitlines()[0] + "\n" + text.splitlines()[1][:40] + "\n")
    else:
        lines = text.splitlines()
        head, row = lines[0].split(","), lines[1].split(",")
        row[head.index("median_s")] = "nan"
        path.write_text("\n".join([lines[0], ",".join(row)]) + "\n")
    capsys.readouterr()
    kc, rows, calls = compose(tmp_path, monkeypatch, 1.0)
    err = [line for line in capsys.readouterr().err.splitlines() if "damaged" in line]
    assert len(err) == 1 and str(path) in err[0] and needle in err[0], err
    assert len(calls) == len({r["kernel_id"] for r in rows})          # every kernel measured again
    assert kc.checks["fp32"]["damaged"] and all(r["source"] == "measured" for r in kc.rows.values())
    with open(path, newline="") as f:                                  # rewritten: a cache the next run reads
        saved = list(csv.DictReader(f))
    assert saved and all(float(r["median_s"]) > 0 for r in saved)
    assert cache_mod.read_cache_file(path)[1] is None


def test_sentinels_are_the_longest_kernel_of_each_kind_and_at_least_50_us():
    from bench.kernels.validate import pick_sentinels, verdict
    ks = list(KERNELS.items())
    linear = [(kid, k) for kid, k in ks if k.impl == "linear"][:3]
    adds = [(kid, k) for kid, k in ks if kind_of(k.impl) == "elementwise"][:2]
    times = dict(zip([kid for kid, _ in linear], [3e-6, 15e-6, 2e-3])) | dict(zip([kid for kid, _ in adds],
                                                                                  [4e-6, 30e-6]))
    cached = {kid: {"median_s": str(t)} for kid, t in times.items()}
    candidates = {kid: (k, "llc") for kid, k in linear + adds}
    assert pick_sentinels(candidates, cached) == [linear[2][0]]       # elementwise: none long enough to check
    short = {kid: {"median_s": "1.5e-05"} for kid in times}           # framework-sized kernels only
    assert pick_sentinels(candidates, short) == []
    v = verdict("f.csv", 5, [], needed=5)
    assert v["validated"] is False and "too short" in v["action"]


def test_the_verdict_is_one_line_on_stderr(tmp_path, monkeypatch, capsys):
    compose(tmp_path, monkeypatch, 1.02)
    capsys.readouterr()
    compose(tmp_path, monkeypatch, 1.0)
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("kernel cache ")]
    assert len(err) == 1 and str(cache_file(tmp_path)) in err[0] and ": reused (sentinels new/cached: linear x0.98" in err[0]


def test_bench_run_and_bench_kernels_share_one_kernel_cache_folder(tmp_path, tiny_sweep_file):
    from bench.cli import DEFAULT_OUT, build_parser
    from bench.kernels.cli import build_parser as kernels_parser
    from bench.kernels.point import run_kernel_cache
    from bench.run.create import create_run
    from bench.store.meta import read_meta
    from bench.sweep import load_sweep
    kernels_default = kernels_parser().parse_args(["--model", "x", "--prompt-len", "8"]).kernel_cache
    sweep, path = load_sweep(str(tiny_sweep_file), "cpu")
    quiet = open("/dev/null", "w")
    beside = create_run(sweep, path, CpuDevice(1), tmp_path / "runs", log=quiet)        # the default: beside the runs
    assert run_kernel_cache(beside, CpuDevice(1)).root == (tmp_path / "runs" / "kernel-cache").resolve()
    assert (DEFAULT_OUT / "kernel-cache") == kernels_default         # bench run's default --out: the same folder
    given = create_run(sweep, path, CpuDevice(1), tmp_path / "runs", log=quiet, kernel_cache=tmp_path / "kc")
    assert read_meta(given)["kernel_cache_dir"] == str((tmp_path / "kc").resolve())
    assert run_kernel_cache(given, CpuDevice(1)).root == (tmp_path / "kc").resolve()
    assert build_parser().parse_args(["run", "--kernel-cache", "kc"]).kernel_cache.name == "kc"
