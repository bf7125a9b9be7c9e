"""A sweep of four tiny families at one shape (gpt_neox, phi, qwen2, mixtral; d=64, 2 layers, 8 tokens): per point
a composed prediction or the reason it has none, profiler attribution that covers the MLP (or says where it does
not), and labels that tell the models apart. The ceilings are the committed CPU run's, so the sweep takes seconds."""
import io
import json
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import ROOT
from tests.test_families import tiny

FAMILY_CONFIGS = {
    "pythia-tiny": tiny("pythia-1.4b.json", num_hidden_layers=2),
    "phi-tiny": tiny("phi-2.json", num_key_value_heads=4, num_hidden_layers=2),
    "qwen2-tiny": tiny("qwen2.5-7b-instruct.json", num_hidden_layers=2),
    "mixtral-tiny": tiny("mixtral-8x7b.json", num_local_experts=4, num_hidden_layers=2),
}
FAMILY_TYPES = {"pythia-tiny": "gpt_neox", "phi-tiny": "phi", "qwen2-tiny": "qwen2", "mixtral-tiny": "mixtral"}
CEILINGS_RUN = ROOT / "results" / "20261123T152622Z-cpu-default-cpu" / "run.json"


@pytest.fixture(scope="module")
def family_run(tmp_path_factory):
    from bench.devices.cpu import CpuDevice
    from bench.run import ceilings as run_ceilings
    from bench.run.create import start_run
    from bench.run.execute import execute
    from bench.sweep import load_sweep
    from theory.hardware import hardware_from_json
    d = tmp_path_factory.mktemp("families")
    paths = []
    for name, cfg in FAMILY_CONFIGS.items():
        (d / f"{name}.json").write_text(json.dumps(cfg))
        paths.append(str(d / f"{name}.json"))
    sweep_file = d / "families.json"
    sweep_file.write_text(json.dumps({"name": "families", "description": "four tiny families at one shape",
                                      "repeats": 2, "warmup_s": 0.01,
                                      "defaults": {"batch": 1, "prompt_len": 8, "generated": 3},
                                      "grids": [{"axes": {"model": paths}}]}))
    real = json.loads(CEILINGS_RUN.read_text())
    mp = pytest.MonkeyPatch()
    mp.setattr(run_ceilings, "measure_ceilings", lambda device, dt, host: (
        hardware_from_json(real["ceilings"][dt], "x"), real["ceilings_detail"][dt]))
    device = CpuDevice(threads=1)
    sweep, path = load_sweep(str(sweep_file), "cpu")
    log = io.StringIO()
    try:
        run_dir = start_run(sweep, path, device, d / "out", log=log)
        execute(run_dir, sweep, device, log=log)
    finally:
        mp.undo()
    return run_dir, log.getvalue()


def report_of(run_dir: Path) -> tuple[str, dict]:
    """report.md's text and summary.json's object, without drawing the figures."""
    from analysis.render.sections import render
    from analysis.report import summary_obj
    from analysis.result import analyse
    a = analyse(run_dir)
    return "\n".join(render(a)), json.loads(json.dumps(summary_obj(a), default=str))


@pytest.fixture(scope="module")
def family_report(family_run):
    return report_of(family_run[0])


def test_unplanned_families_say_per_point_why_they_are_not_composed(family_run, family_report):
    run_dir, log = family_run
    report, summary = family_report
    progress = [line for line in log.splitlines() if line.startswith("[")]
    assert len(progress) == 4
    assert all("not composed: no kernel plan for its family (model_type" in line for line in progress)
    assert "biases" in next(line for line in progress if "qwen2-tiny" in line)
    comp = summary["composition"]
    assert comp["kernels_asked"] is True
    assert len(comp["not_composed"]) == 4
    assert all(p["reason"].startswith("no kernel plan for its family") for p in comp["not_composed"])
    assert "--no-kernels" not in report and "## Not composed" in report
    assert "no point's family has a kernel plan" in report


def test_missing_kernel_files_and_no_kernels_read_differently(run_copy):
    text = lambda: report_of(run_copy)[0]                         # noqa: E731
    (run_copy / "kernels.csv").unlink()
    assert "`kernels.csv` is missing from the run directory" in text() and "--no-kernels" not in text()
    (run_copy / "compose.csv").unlink()
    report = text()
    assert "`compose.csv` missing from the run directory, though run.json records" in report
    assert "--no-kernels" not in report
    meta = json.loads((run_copy / "run.json").read_text())
    (run_copy / "run.json").write_text(json.dumps({**meta, "kernels": False}))
    report = text()
    assert "no kernel table in this run (`--no-kernels`)" in report and "missing from the run directory" not in report


def test_profile_attributes_each_familys_mlp(family_run):
    run_dir, _ = family_run
    prof = pd.read_csv(run_dir / "profile.csv", dtype={"point_id": str})
    rows = pd.read_csv(run_dir / "measurements.csv", dtype={"point_id": str})
    model_of = rows.groupby("point_id")["model"].first().map(lambda m: Path(m).stem)
    prof["family"] = prof["point_id"].map(model_of)
    for fam, g in prof.groupby("family"):
        steps = g.groupby(["phase", "step"])
        share = lambda grp: steps.apply(lambda s: s.loc[s["group"] == grp, "time_s"].sum() / s["time_s"].sum())  # noqa: E731
        assert (share("mlp") > 0).all(), fam
        assert share("unattributed").median() < 0.2, fam
    ops = set(prof["op"])
    assert {"fc_in", "fc_out", "act", "router", "experts", "qkv_proj"} <= ops


def test_share_flag_leaves_out_steps_with_incomplete_attribution():
    from analysis.flags import share_flags
    base = {"phase": "decode", "inflation": 2.0, "predicted_share_attention": 0.4, "predicted_share_mlp": 0.3}
    shares = pd.DataFrame([
        {**base, "point_id": "good", "measured_share_attention": 0.5, "measured_share_mlp": 0.3,
         "measured_share_unattributed": 0.05},
        {**base, "point_id": "gap", "measured_share_attention": 0.2, "measured_share_mlp": 0.0,
         "measured_share_unattributed": 0.7},
    ])
    flags = {f["kind"]: f for f in share_flags(shares, {"gap": "neox (gpt_neox)"})}
    assert flags["attribution_incomplete"]["points"] == ["gap"]
    assert "neox (gpt_neox)" in flags["attribution_incomplete"]["message"]
    assert flags["attention_mlp_share"]["measured_mlp_share"] == 0.3          # the complete step only
    only_gap = share_flags(shares[shares["point_id"] == "gap"])
    assert [f["kind"] for f in only_gap] == ["attribution_incomplete"]


def test_labels_tell_the_models_apart(family_run, family_report, monkeypatch):
    from analysis.names import names_by_id
    from analysis.render import plots
    run_dir, _ = family_run
    rows = pd.read_csv(run_dir / "measurements.csv", dtype={"point_id": str})
    names = set(names_by_id(rows).values())
    assert names == {f"{n} ({t}) b=1 T=8 G=3" for n, t in FAMILY_TYPES.items()}
    speed = family_report[1]["first_screen"]["speed"]
    assert len({s["name"] for s in speed}) == 4
    titles = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: titles.append(fig.axes[0].get_title()) or str(path))
    from analysis.result import analyse
    plots.time_vs_tokens(analyse(run_dir).df, run_dir / "x.png")
    assert any(f"({t})" in titles[0] for t in FAMILY_TYPES.values()), titles


def test_same_name_at_two_dtypes_is_told_apart_by_id():
    from analysis.names import names_by_id
    base = {"hidden_size": 64, "num_hidden_layers": 2, "batch": 1, "prompt_len": 8, "generated": 3, "model": ""}
    names = names_by_id(pd.DataFrame([{**base, "point_id": "aaaaaa1"}, {**base, "point_id": "bbbbbb2"}]))
    assert len(set(names.values())) == 2
