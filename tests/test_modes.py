"""Execution modes: a tiny model compiled once and timed, recompilation detection, the CUDA-graph branch."""
import json
import shutil
import subprocess
import sys

import pytest

from bench.modes import CompileWatch, check_execution, prepare
from bench.kernels.point import assemble_kernels
from bench.store.points import assemble, save_point
from bench.store.files import read_csv
from bench.sweep import Point, Sweep, load_sweep
from tests.conftest import ROOT, TINY_SWEEP, subprocess_env
from theory.errors import TheoryError
from theory.modes import compiled_kernels

TINY = dict(hidden_size=64, num_hidden_layers=1, head_dim=16, vocab_size=256, prompt_len=8, generated=5,
            cache="static")
TWIN = {**TINY_SWEEP["defaults"], "cache": "static"}         # tiny_run measured this point eagerly


@pytest.fixture(scope="session")
def compiled_point(tiny_run, tmp_path_factory):
    """One compile per test session, of the point tiny_run measured eagerly (d=64, L=2, static cache), profiled
    after its timed trajectories as `bench run` does (points/<id>.profile.csv in its own run directory)."""
    import torch
    from bench.devices.cpu import CpuDevice
    from bench.point.job import PointJob
    from bench.point.measure import measure_point
    torch.set_num_threads(1)
    p = Point(**TWIN, execution="compile-static")
    sweep = Sweep("t", "", 3, 0.05, (), "", 3, 3, 6.0, 0)     # exactly 3 repeats, as a `repeats: 3` file
    from bench.kernels.cache import KernelCache
    from bench.kernels.point import llc_of, measure_point_kernels
    run_dir = tmp_path_factory.mktemp("compiled-run")
    device = CpuDevice(threads=1)
    rows, samples = measure_point(PointJob(p, p.point_id("cpu"), device, sweep, run_dir, profile=True))
    # Its kernels and compiled framework (bench/kernels/compiled.py). The "tiny" model is the point's own shape
    # here so that dynamo reuses the graph just compiled: this proves the plumbing, not the figure, without a
    # second compile (tens of seconds); the kernels come from tiny_run's kernel cache (the eager twin's).
    kcache = KernelCache(tiny_run.parent / "kernel-cache", device, llc_of(device))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("bench.kernels.compiled.tiny_spec", lambda spec: spec)
        measure_point_kernels(run_dir, p, p.point_id("cpu"), device, rows, kcache)
    eager = [r for r in read_csv(tiny_run / "measurements.csv") if r["point_id"] == Point(**TWIN).point_id("cpu")]
    return p, rows, samples, eager, run_dir


@pytest.mark.slow
def test_compiled_point_is_timed_after_compilation_settles(compiled_point):
    p, rows, samples, eager, _ = compiled_point
    assert [r["status"] for r in rows] == ["ok"] * 5 and len(eager) == 5
    r = rows[1]
    assert r["execution"] == "compile-static" and eager[1]["execution"] == "eager"
    assert r["graphs_compiled"] == 1                 # the decode step, once (prefill runs eager)
    assert r["recompiles_timed"] == 0
    assert r["compile_s"] > 10 * r["time_s"]         # compile time kept apart from the timed step
    assert eager[1]["compile_s"] == ""
    assert all(x["time_s"] > 0 for x in rows)
    assert len(samples) == 5 * (1 + 3)
    # The compiled graph dispatches far fewer ops than eager (fused norms, rotary, act·mul, residual adds),
    # and exactly as many as theory reads off inductor's fusion (a change of fusion shows up here).
    assert 0 < r["n_dispatch"] < int(eager[1]["n_dispatch"]) / 2
    # The eager prefill, counted as eager (a few ops apart: 155 vs 151 here, not yet explained).
    assert abs(rows[0]["n_dispatch"] - int(eager[0]["n_dispatch"])) <= 8
    assert r["n_dispatch"] == compiled_kernels(p.spec(), "compile-static")


@pytest.mark.slow
def test_compiled_decode_steps_are_profiled_by_theory_op(compiled_point):
    """Profiled after timing without compiling anything: the matmuls named by shape, Inductor's fused kernels as
    groups of theory ops, shares summing to 1 and times to the profiled step."""
    from bench.profiling.compiled_names import members_of
    from theory.ops import OPS
    p, rows, _, _, run_dir = compiled_point
    prof = read_csv(run_dir / "points" / f"{p.point_id('cpu')}.profile.csv")
    assert rows[1]["recompiles_timed"] == 0 and prof           # a step that compiled while profiled gives no rows
    assert {r["phase"] for r in prof} == {"decode"}              # the prefill ran eager: the eager twin's profile
    layers = p.spec().num_hidden_layers
    for step in {r["step"] for r in prof}:
        g = [r for r in prof if r["step"] == step]
        by_op = {r["op"]: r for r in g}
        for op in ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "attn_core"):
            assert int(by_op[op]["calls"]) == layers and float(by_op[op]["time_s"]) > 0, op
        assert int(by_op["lm_head"]["calls"]) == 1
        fused = [op for op in by_op if op.startswith("fused(")]
        assert fused and all(set(members_of(op)) <= set(OPS) for op in fused)
        assert any({"residual_add", "post_attention_norm"} <= set(members_of(op)) for op in fused)
        assert by_op["framework"]["group"] == "framework"
        assert sum(float(r["share"]) for r in g) == pytest.approx(1.0)
        assert sum(float(r["time_s"]) for r in g) == pytest.approx(float(g[0]["step_profiled_s"]))


@pytest.mark.slow
def test_report_sets_the_mode_beside_its_eager_twin(compiled_point, tiny_run, tmp_path):
    from analysis.report import write_report
    p, rows, samples, _, compiled_dir = compiled_point
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run, run_dir)
    for f in (compiled_dir / "points").glob("*.*.csv"):                  # profile, compose, framework
        shutil.copy(f, run_dir / "points" / f.name)
    save_point(run_dir, p.point_id("cpu"), rows, samples)
    ids = [f.name.split(".")[0] for f in sorted((run_dir / "points").glob("*.csv")) if f.name.count(".") == 1]
    assemble(run_dir, ids)
    assemble_kernels(run_dir, ids, lambda *_: True)
    report = write_report(run_dir).read_text()
    assert "## Execution modes" in report and "compile-static removes" in report
    modes = read_csv(run_dir / "modes.csv")
    assert len(modes) == 1 and modes[0]["eager_point_id"] == Point(**TWIN).point_id("cpu")
    lo, mid, hi = (float(modes[0][k]) for k in ("speedup_lo", "speedup", "speedup_hi"))
    assert 0 < lo <= mid <= hi
    assert int(modes[0]["kernels_theory"]) == int(modes[0]["n_dispatch"])
    # Composed per mode beside the eager twin's composed error, in modes.csv, the report and summary.json
    m = modes[0]
    assert float(m["composed_s"]) > 0 and float(m["eager_composed_s"]) > 0
    assert float(m["composed_error"]) == pytest.approx(float(m["tpot_s"]) / float(m["composed_s"]) - 1)
    assert "compile-static: |measured/composed − 1| median" in report
    acc = json.loads((run_dir / "summary.json").read_text())["modes_accuracy"]["compile-static"]
    assert acc["points"] == 1 and acc["eager_median_abs_error"] == pytest.approx(abs(float(m["eager_composed_error"])))
    # The compiled decode step's profile: its top ops and fused groups with their shares
    assert "fused(" in m["profile_top"] and "**Compiled decode step, profiled**" in report
    assert write_report(run_dir).read_text() == report           # same bytes when rebuilt


def test_recompilation_on_a_shape_change_is_detected():
    import torch
    from bench.point.rows import mode_fields
    f = torch.compile(lambda x: x * 2 + 1, dynamic=False)
    watch = CompileWatch("compile-static")
    f(torch.ones(3))
    assert not watch.tick()                          # the first call compiled: not settled yet
    f(torch.ones(3))
    assert watch.tick() and watch.recompiles_since_settled() == 0
    f(torch.ones(5))                                 # a new shape while "timing": a recompilation

    class M:
        def step_stats(self):
            return []
    fields = mode_fields(watch, M())
    assert fields["recompiles_timed"] == 1
    assert fields["status"] == "recompiled" and "1 graph(s)" in fields["message"]


class _NoSteps:
    def step_stats(self):
        return []


def test_a_cudagraphs_point_whose_graph_inductor_skipped_is_flagged_not_ok():
    """On CPU tensors Inductor cannot make a CUDA graph: it runs the graph as is and bumps
    counters["inductor"]["cudagraph_skips"] (the installed torch's name); the point is `cudagraph_skipped`, which
    is what the stand-in's cudagraphs point was (recorded ok with 9 dispatches before)."""
    import torch
    from bench.point.rows import mode_fields
    watch = CompileWatch("cudagraphs")
    f = torch.compile(lambda x: x * 2 + 1, mode="reduce-overhead", fullgraph=True, dynamic=False)
    f(torch.ones(3))
    assert not watch.tick()
    f(torch.ones(3))
    assert watch.tick() and watch.cudagraph_skips() == 1
    fields = mode_fields(watch, _NoSteps())
    assert fields["status"] == "cudagraph_skipped" and fields["cudagraph_skips"] == 1
    assert "without a CUDA graph" in fields["message"] and fields["recompiles_timed"] == 0
    assert CompileWatch("compile-static").cudagraph_skips() == 0     # other modes never read it


def test_a_cuda_graph_recorded_while_timed_is_flagged(monkeypatch):
    """The CUDA graph trees' nodes, counted through the installed module's own names (get_obj(local,
    "tree_manager_containers"), tree_manager, roots, children), faked here: a node recorded after warm-up settled
    (a static input at a new address) makes the point `cudagraph_rerecorded`; a recompilation still comes first."""
    from types import SimpleNamespace
    from torch._inductor import cudagraph_trees
    from bench import modes
    from bench.point.rows import mode_fields

    def node(*kids):
        return SimpleNamespace(children={"f": list(kids)} if kids else {})
    roots = {"f": [node(node(), node())]}
    containers = {0: SimpleNamespace(tree_manager=SimpleNamespace(roots=roots)), 1: SimpleNamespace(tree_manager=None)}
    monkeypatch.setattr(cudagraph_trees, "get_obj", lambda local, name: containers)
    assert modes.cudagraphs_recorded() == 3
    watch = CompileWatch("cudagraphs")
    roots["f"].append(node())                          # recorded during warm-up: not settled yet
    assert not watch.tick() and watch.tick()
    assert mode_fields(watch, _NoSteps())["status"] == "ok"
    roots["f"][0].children["f"].append(node())          # recorded during the timed trajectories
    fields = mode_fields(watch, _NoSteps())
    assert fields["status"] == "cudagraph_rerecorded" and fields["cudagraph_rerecords_timed"] == 1
    monkeypatch.setattr(watch, "recompiles_since_settled", lambda: 2)
    fields = mode_fields(watch, _NoSteps())
    assert fields["status"] == "recompiled" and "recorded during the timed" in fields["message"]


def test_flagged_points_are_finished_and_kept_out_of_the_ok_rows(tmp_path):
    """A flagged point has every pass's row: resuming a run does not measure it again, analysis never takes it
    as ok, and the modes table gives a skipped CUDA-graph point its kernels, not one launch."""
    import pandas as pd
    from analysis.modes import modes_table
    from bench.store.points import point_done
    rows = [{"point_id": "p", "phase": ph, "step": st, "generated": 2, "status": "cudagraph_skipped"}
            for ph, st in (("prefill", 0), ("decode", 0))]
    save_point(tmp_path, "p", rows, [])
    assert point_done(tmp_path, "p")
    save_point(tmp_path, "q", [{**rows[0], "point_id": "q", "status": "error"}] * 2, [])
    assert not point_done(tmp_path, "q")
    key = dict(hidden_size=64, num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=4, head_dim=16,
               intermediate_size=128, vocab_size=256, model="m", dtype="fp32", batch=1, prompt_len=8, generated=2,
               attention="sdpa", cache="static", phase="decode", measured_time_s=1e-3,
               predicted_time_s_ceilings=5e-4, compile_s=1.0, recompiles_timed=0, n_dispatch=9)
    df = pd.DataFrame([{**key, "point_id": "e", "execution": "eager", "cudagraph_skips": 0, "n_dispatch": 90},
                       {**key, "point_id": "g", "execution": "cudagraphs", "cudagraph_skips": 1}])
    samples = pd.DataFrame(columns=["point_id", "phase", "repeat", "time_s"])
    for skips, launches in ((1, 9), (0, 1)):
        df.loc[1, "cudagraph_skips"] = skips
        t = modes_table(df, samples, 1e-6, 1e-6)
        assert t.loc[0, "predicted_s"] == pytest.approx(5e-4 + launches * 1e-6)


def test_more_compiled_models_than_dynamos_recompile_limit(monkeypatch):
    """modes-cpu compiles 11 models of one class in one process, and each compiled point also compiles its tiny
    framework model: past torch._dynamo.config.recompile_limit (8) a fullgraph compile failed
    (FailOnRecompileLimitHit) before prepare() reset dynamo. The eager backend keeps this fast: dynamo's cache
    is what is tested."""
    import torch
    from bench import modes
    monkeypatch.setattr(modes, "compile_kwargs", lambda e: {"fullgraph": True, "dynamic": False, "backend": "eager"})

    class M(torch.nn.Module):
        def __init__(self, d):
            super().__init__()
            self.emb = torch.nn.Embedding(8, d)

        def forward(self, input_ids):
            return self.emb(input_ids) * 2

    before = modes.graphs_compiled()
    n = torch._dynamo.config.recompile_limit + 2
    for d in range(4, 4 + n):
        m = M(d)
        prepare(m, "compile-static", "cpu")
        assert m.forward(input_ids=torch.zeros(1, 1, dtype=torch.long)).shape == (1, 1, d)
    assert modes.graphs_compiled() - before == n


def test_cudagraphs_branch_up_to_the_gpu(monkeypatch):
    """cudagraphs compiles with mode=reduce-overhead and marks a step before every call. A real GPU is needed
    past this point; after merge the suite's CUDA stand-in device should drive measure_point with it."""
    import torch
    calls = []
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: calls.append(kw) or (lambda *a, **k: ("out", a, k)))
    monkeypatch.setattr(torch.compiler, "cudagraph_mark_step_begin", lambda: calls.append("mark"))

    class Model:
        def forward(self, *a, **k):
            return "eager"
    m = Model()
    with pytest.raises(ValueError, match="needs a CUDA device"):
        prepare(m, "cudagraphs", "cpu")
    prepare(m, "cudagraphs", "cuda")
    assert calls == [{"fullgraph": True, "dynamic": False, "mode": "reduce-overhead"}]
    step = torch.ones(1, 1, dtype=torch.long)
    assert m.forward(input_ids=torch.ones(1, 4, dtype=torch.long)) == "eager"       # prefill runs eager
    assert calls[1:] == []
    assert m.forward(input_ids=step) == ("out", (), {"input_ids": step})           # the decode step replays
    assert calls[1:] == ["mark"]
    if not torch.cuda.is_available():
        pytest.skip("a real CUDA device is needed to capture and replay the graph")


@pytest.mark.parametrize("execution,cache,device,ok", [
    ("eager", "dynamic", "cpu", True), ("compile", "dynamic", "cpu", True),
    ("compile-static", "static", "cpu", True), ("compile-static", "dynamic", "cpu", False),
    ("cudagraphs", "static", "cuda", True), ("cudagraphs", "static", "cpu", False), ("jit", "static", "cpu", False),
])
def test_execution_validation(execution, cache, device, ok):
    assert (check_execution(execution, cache, device) is None) == ok


def test_cudagraphs_sweep_refused_on_cpu_in_one_line(tmp_path):
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"name": "s", "defaults": {**TINY}, "grids": [{"axes": {"execution": ["cudagraphs"]}}]}))
    with pytest.raises(TheoryError, match="needs a CUDA device"):
        load_sweep(str(path), "cpu")
    load_sweep(str(path), "cuda")                    # the same file is fine for a CUDA run
    r = subprocess.run([sys.executable, "-m", "bench", "run", "--device", "cpu", "--sweep", str(path),
                        "--out", str(tmp_path / "out")], capture_output=True, text=True, env=subprocess_env(), cwd=ROOT)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "cudagraphs" in r.stderr
    assert not (tmp_path / "out").exists()


def test_eager_point_ids_unchanged_by_the_execution_axis():
    import hashlib
    from dataclasses import asdict
    p = Point(**TINY)
    before = {k: v for k, v in asdict(p).items() if k != "execution"} | {"dtype": "fp32"}
    assert p.point_id("cpu") == hashlib.sha1(json.dumps(before, sort_keys=True).encode()).hexdigest()[:12]
    assert p.point_id("cpu") != Point(**TINY, execution="compile-static").point_id("cpu")
    assert "execution" not in p.label() and "compile-static" in Point(**TINY, execution="compile-static").label()


def test_shipped_sweeps_validate():
    for name, device in (("default-cpu", "cpu"), ("modes-cpu", "cpu"), ("default-cuda", "cuda"), ("modes", "cuda")):
        sweep, _ = load_sweep(name, device)
        assert {p.execution for p in sweep.points} >= {"eager", "compile-static"}
        assert any(p.execution == "cudagraphs" for p in sweep.points) == (device == "cuda")
    with pytest.raises(TheoryError, match="needs a CUDA device"):
        load_sweep("modes", "cpu")


def test_speedup_interval_and_modes_figure(tmp_path):
    import numpy as np
    import pandas as pd
    from analysis.modes import modes_figure, speedup_interval
    same = np.array([1.0, 1.1, 0.9, 1.05, 0.95])
    mid, lo, hi = speedup_interval(same, same)
    assert mid == 1.0 and lo < 1.0 < hi
    mid, lo, hi = speedup_interval(same * 2, same)
    assert mid == pytest.approx(2.0) and lo < 2.0 < hi and lo > 1.5
    t = pd.DataFrame({"hidden_size": [256, 512], "num_hidden_layers": [4, 4], "cache": ["static"] * 2,
                      "execution": ["compile-static"] * 2, "eager_point_id": ["a", "b"], "eager_tpot_s": [3e-3, 5e-3],
                      "eager_predicted_s": [3e-3, 5e-3], "eager_roofline_s": [1e-3, 2e-3], "tpot_s": [2e-3, 4e-3],
                      "predicted_s": [2e-3, 4e-3]})
    assert modes_figure(t, tmp_path / "m.png") and (tmp_path / "m.png").stat().st_size > 0
    assert modes_figure(t.iloc[:1], tmp_path / "one.png") is None          # one width is no curve


def test_the_mode_table_agrees_with_theory():
    """One row per mode in bench/modes.py, the same names as theory's, and the same static and CUDA-only sets."""
    from bench.modes import DECODE_ONLY, MODES
    from theory.modes import CUDA_ONLY, EXECUTIONS, STATIC_EXECUTIONS
    assert tuple(MODES) == EXECUTIONS
    assert set(DECODE_ONLY) == set(STATIC_EXECUTIONS)
    assert {n for n, m in MODES.items() if m.cuda_only} == set(CUDA_ONLY)
    assert [n for n, m in MODES.items() if not m.compiled] == ["eager"]
    assert not MODES["compile-static"].compiled_pass("prefill") and MODES["compile"].compiled_pass("prefill")
