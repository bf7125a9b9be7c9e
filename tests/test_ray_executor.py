"""The Ray executor (bench/launch/ray.py): against a real local Ray cluster started here (skipped without the [ray]
extra), and its driver's bookkeeping (options, boxes, Ctrl-C) against a stand-in `ray` module."""
import json
import os
from types import SimpleNamespace

import pytest

from bench.devices.cpu import CpuDevice
from bench.launch import ray as rayexec
from bench.run.create import create_run
from bench.run.execute import execute
from bench.store.files import read_csv
from bench.sweep import load_sweep, restrict

QUIET = open(os.devnull, "w")


def small_run(tiny_sweep_file, out, n_points=2, **meta_edit):
    sweep, path = load_sweep(str(tiny_sweep_file), "cpu")
    sweep = restrict(sweep, "cpu", [p.point_id("cpu") for p in sweep.points[:n_points]])
    device = CpuDevice(1)
    executor = {"name": "ray", "address": None, "accelerator_type": None, "per_task": {"num_cpus": 1}}
    run_dir = create_run(sweep, path, device, out, log=QUIET, profile=False, isolate=True, executor=executor)
    if meta_edit:
        meta = json.loads((run_dir / "run.json").read_text())
        meta.update(meta_edit)
        (run_dir / "run.json").write_text(json.dumps(meta))
    return run_dir, sweep, device


class StandinRay:
    """What execute_ray calls on `ray`; wait() is interrupted like a Ctrl-C at the first point."""
    def __init__(self):
        self.cancelled, self.submitted = [], []

    def is_initialized(self):
        return True

    def nodes(self):
        return [{"NodeID": "n1", "Resources": {"GPU": 1.0, "accelerator_type:H100": 1.0}}, {"NodeID": "n2", "Resources": {}}]

    def remote(self, fn):
        ray = self

        class Task:
            def options(self, **opts):
                ray.options = opts
                return self

            def remote(self, *args):
                ray.submitted.append(args)
                return f"ref{len(ray.submitted)}"
        return Task()

    def wait(self, refs, num_returns=1):
        raise KeyboardInterrupt

    def cancel(self, ref):
        self.cancelled.append(ref)


def test_ctrl_c_cancels_every_task_and_leaves_a_resumable_run(tiny_sweep_file, tmp_path, monkeypatch):
    ray = StandinRay()
    monkeypatch.setattr(rayexec, "import_ray", lambda: ray)
    pytest.importorskip("ray.exceptions", reason="the [ray] extra is not installed")
    run_dir, sweep, device = small_run(tiny_sweep_file, tmp_path, ceilings={"fp32": {}})
    with pytest.raises(KeyboardInterrupt):
        rayexec.execute_ray(run_dir, sweep, device, json.loads((run_dir / "run.json").read_text()), QUIET)
    assert sorted(ray.cancelled) == ["ref1", "ref2"] and ray.options == {"num_cpus": 1, "max_retries": 0}
    assert not list((run_dir / "points").glob("*.csv")) if (run_dir / "points").exists() else True


def test_cuda_tasks_ask_for_a_gpu_of_the_named_type_and_rows_name_their_node_type():
    cuda = SimpleNamespace(kind="cuda")
    rec = rayexec.executor_record(cuda, "auto", "H100", None, None) if _has_ray() else \
        {"per_task": {"num_gpus": 1}, "accelerator_type": "H100"}
    assert rayexec.task_options(rec) == {"num_gpus": 1, "max_retries": 0, "accelerator_type": "H100"}
    types = rayexec.node_types(StandinRay())
    assert types == {"n1": "H100", "n2": ""}
    assert rayexec.box_of({"node_id": "n1", "host": "h"}, "cuda", types) == "H100"
    assert rayexec.box_of({"node_id": "n2", "host": "h"}, "cuda", types) == "gpu"
    assert rayexec.box_of({"node_id": "n2", "host": "h"}, "cpu", types) == "h"


def _has_ray() -> bool:
    try:
        import ray  # noqa: F401
        return True
    except ImportError:
        return False


def test_a_missing_extra_is_one_line_saying_how_to_install(monkeypatch):
    import builtins
    real = builtins.__import__
    monkeypatch.setattr(builtins, "__import__", lambda name, *a, **k: (_ for _ in ()).throw(ImportError(name))
                        if name == "ray" else real(name, *a, **k))
    with pytest.raises(ValueError, match=r"pip install -e '\.\[ray\]'"):
        rayexec.import_ray()


@pytest.fixture(scope="module")
def local_cluster():
    ray = pytest.importorskip("ray", reason="the [ray] extra is not installed (pip install -e '.[ray]')")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_points_run_as_ray_tasks_into_an_ordinary_run_directory(local_cluster, tiny_sweep_file, tmp_path):
    run_dir, sweep, device = small_run(tiny_sweep_file, tmp_path)
    execute(run_dir, sweep, device, log=QUIET)
    rows = read_csv(run_dir / "measurements.csv")
    ids = [p.point_id("cpu") for p in sweep.points]
    assert sorted({r["point_id"] for r in rows}) == sorted(ids) and all(r["status"] == "ok" for r in rows)
    meta = json.loads((run_dir / "run.json").read_text())
    assert {r["box"] for r in rows} <= set(meta["boxes"]) and meta["repeat_summary"]["repeats_taken"] > 0
    from analysis.join import join
    from analysis.load import load_run
    assert len(join(load_run(run_dir))) == len(rows)


def test_a_failed_task_is_an_error_row_and_the_run_goes_on(local_cluster, tiny_sweep_file, tmp_path):
    """Every task raises on its node (a run id its scratch directory cannot take): RayTaskError, one error row each."""
    run_dir, sweep, device = small_run(tiny_sweep_file, tmp_path, n_points=2)
    from bench.run.ceilings import ensure_ceilings
    ensure_ceilings(run_dir, sweep, device, QUIET)
    meta = {**json.loads((run_dir / "run.json").read_text()), "run_id": "no/such"}
    (run_dir / "run.json").write_text(json.dumps(meta))
    rayexec.execute_ray(run_dir, sweep, device, meta, QUIET)
    rows = read_csv(run_dir / "measurements.csv")
    assert len(rows) == 2 and all(r["status"] == "error" and "ray task failed" in r["message"] for r in rows)
