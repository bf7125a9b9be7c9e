"""Execution modes: a tiny model compiled once and timed, recompilation detection, the CUDA-graph branch."""
import json
import subprocess
import sys

import pytest

from bench.modes import CompileWatch, check_execution, prepare
from bench.sweep import Point, Sweep, load_sweep
from tests.conftest import ROOT, subprocess_env
from theory.errors import TheoryError

TINY = dict(hidden_size=64, num_hidden_layers=1, head_dim=16, vocab_size=256, prompt_len=8, generated=5,
            cache="static")


@pytest.fixture(scope="session")
def compiled_rows():
    """One compile per test session: the smallest model that runs the static-cache decode path."""
    import torch
    from bench.device import CpuDevice
    from bench.runner import measure_point
    torch.set_num_threads(1)
    device = CpuDevice(threads=1)
    sweep = Sweep("t", "", 3, 0.05, (), "")
    eager, _ = measure_point(Point(**TINY), "eager", device, sweep)
    compiled, samples = measure_point(Point(**TINY, execution="compile-static"), "compiled", device, sweep)
    return eager, compiled, samples


@pytest.mark.slow
def test_compiled_point_is_timed_after_compilation_settles(compiled_rows):
    eager, compiled, samples = compiled_rows
    assert [r["status"] for r in compiled] == ["ok"] * 5
    r = compiled[1]
    assert r["execution"] == "compile-static" and eager[1]["execution"] == "eager"
    assert r["graphs_compiled"] == 2                 # prefill and the decode step, each once
    assert r["recompiles_timed"] == 0
    assert r["compile_s"] > 10 * r["time_s"]         # compile time kept apart from the timed step
    assert eager[1]["compile_s"] is None
    assert all(x["time_s"] > 0 for x in compiled)
    # The compiled graph dispatches far fewer ops than eager (fused norms, rotary, act·mul, residual adds).
    assert 0 < r["n_dispatch"] < eager[1]["n_dispatch"] / 2
    assert len(samples) == 5 * (1 + 3)


def test_recompilation_on_a_shape_change_is_detected():
    import torch
    from bench.runner import mode_fields
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


def test_cudagraphs_branch_up_to_the_gpu(monkeypatch):
    """cudagraphs compiles with mode=reduce-overhead and marks a step before every call. A real GPU is needed
    past this point; after merge the suite's CUDA stand-in device should drive measure_point with it."""
    import torch
    calls = []
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: calls.append(kw) or (lambda *a, **k: ("out", a, k)))
    monkeypatch.setattr(torch.compiler, "cudagraph_mark_step_begin", lambda: calls.append("mark"))

    class Model:
        def forward(self, *a, **k):
            raise AssertionError("the eager forward must not run")
    m = Model()
    with pytest.raises(ValueError, match="needs a CUDA device"):
        prepare(m, "cudagraphs", "cpu")
    prepare(m, "cudagraphs", "cuda")
    assert calls == [{"fullgraph": True, "dynamic": False, "mode": "reduce-overhead"}]
    assert m.forward(input_ids=1) == ("out", (), {"input_ids": 1})
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
    for name in ("default-cpu", "default-cuda", "modes"):
        sweep, _ = load_sweep(name, "cuda")
        assert {p.execution for p in sweep.points} >= {"eager", "compile-static"}
    assert not any(p.execution == "cudagraphs" for p in load_sweep("default-cpu", "cpu")[0].points)
