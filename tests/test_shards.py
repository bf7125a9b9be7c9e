"""Shards of a sweep and their merge: the split covers the sweep once, is stable and balanced by theory's work; the
merge rebuilds one run (each point against its own box's ceilings) and refuses mixed runs, overlaps and gaps.
Shard run directories are cut from the session's tiny run (no new measurements)."""
import json
import shutil

import pytest

from bench.cli import main as bench_main
from bench.run.merge import merge
from bench.run.shard import parse_shard, predicted_work_s, shard_record, split
from bench.store.files import read_csv
from bench.sweep import load_run_sweep, load_sweep, restrict


@pytest.fixture(scope="module")
def tiny(tiny_run):
    sweep, meta = load_run_sweep(tiny_run)
    return sweep


def cut_shards(tiny_run, root, n: int = 2, tweak=None) -> list:
    """Shard run directories as `--shard k/n` would leave them, from the tiny run's files."""
    sweep, _ = load_run_sweep(tiny_run)
    dirs = []
    for k in range(n):
        rec = shard_record(sweep, "cpu", k, n)
        d = root / f"tiny-shard{k}of{n}"
        shutil.copytree(tiny_run, d)
        for f in (d / "points").iterdir():
            if f.name.split(".")[0] not in rec["point_ids"]:
                f.unlink()
        meta = json.loads((d / "run.json").read_text())
        meta.update(run_id=d.name, shard=rec, points=len(rec["point_ids"]), host=f"box{k}")
        if tweak:
            tweak(k, meta)
        (d / "run.json").write_text(json.dumps(meta))
        dirs.append(d)
    return dirs


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_shards_cover_the_sweep_once_and_stay_balanced(tiny, n):
    parts = split(tiny, "cpu", n)
    ids = [p.point_id("cpu") for p in tiny.points]
    assert sorted(sum(parts, [])) == sorted(ids)                      # union = the sweep, disjoint
    assert split(tiny, "cpu", n) == parts                             # deterministic
    work = dict(zip(ids, predicted_work_s(tiny, "cpu")))
    loads = [sum(work[pid] for pid in part) for part in parts]
    assert max(loads) - min(loads) <= max(work.values()) + 1e-12       # greedy largest-first bound
    for part in parts:
        assert part == [pid for pid in ids if pid in part]            # each in sweep order


def test_a_resumed_shard_measures_the_points_it_started_with(tiny_run, tmp_path):
    """The shard's ids live in run.json; resume and the isolated child read the sweep restricted to them."""
    d = cut_shards(tiny_run, tmp_path)[1]
    sweep, meta = load_run_sweep(d)
    assert [p.point_id("cpu") for p in sweep.points] == meta["shard"]["point_ids"]
    assert sweep.sha1 == meta["sweep_sha1"]                           # the whole sweep's file and sha1


def test_shard_argument_is_checked_in_one_line():
    assert parse_shard("0/4") == (0, 4) and parse_shard(None) is None
    for bad, words in (("4/4", "--array=0-3"), ("x/2", "K/N"), ("1/0", "at least 1"), ("-1/2", "0..1")):
        with pytest.raises(ValueError, match=words.replace(".", r"\.").replace("-", r"\-")):
            parse_shard(bad)


def test_the_cli_records_the_shard_in_run_json(tiny_sweep_file, tmp_path):
    from bench.devices.cpu import CpuDevice
    from bench.run.create import create_run
    sweep, path = load_sweep(str(tiny_sweep_file), "cpu")
    rec = shard_record(sweep, "cpu", 1, 3)
    d = create_run(restrict(sweep, "cpu", rec["point_ids"]), path, CpuDevice(1), tmp_path, log=open("/dev/null", "w"),
                   shard=rec)
    meta = json.loads((d / "run.json").read_text())
    assert d.name.endswith("tiny-shard1of3") and meta["shard"]["count"] == 3
    assert meta["points"] == len(rec["point_ids"]) and meta["sweep_sha1"] == sweep.sha1


def test_merged_shards_are_the_plain_run_with_each_point_on_its_own_box(tiny_run, tmp_path):
    def faster_box1(k, meta):                 # box 1 measured twice the bandwidth: its points must use it
        if k == 1:
            for c in meta["ceilings"].values():
                c["memory_bandwidth_bytes_per_s"] *= 2
    shards = cut_shards(tiny_run, tmp_path, tweak=faster_box1)
    out = merge(shards, tmp_path / "merged", log=open("/dev/null", "w"))
    plain, merged = read_csv(tiny_run / "measurements.csv"), read_csv(out / "measurements.csv")
    assert [(r["point_id"], r["phase"], r["step"]) for r in merged] == \
        [(r["point_id"], r["phase"], r["step"]) for r in plain]          # same rows, sweep order, none twice
    meta = json.loads((out / "run.json").read_text())
    assert [s["box"] for s in meta["shards"]] == [d.name for d in shards] and set(meta["boxes"]) == {d.name for d in shards}
    assert meta["shards"][1]["run"]["shard"]["index"] == 1            # each shard's whole run.json is kept
    box_of = {r["point_id"]: r["box"] for r in merged}
    assert set(box_of.values()) == {d.name for d in shards}
    from analysis.join import join
    from analysis.load import load_run
    a, b = join(load_run(tiny_run)), join(load_run(out))
    a, b = a.set_index(["point_id", "phase", "step"]), b.set_index(["point_id", "phase", "step"])
    same = (a["predicted_memory_s"] == b["predicted_memory_s"].reindex(a.index))
    on_box1 = a.index.get_level_values(0).map(box_of) == shards[1].name
    assert same[~on_box1].all() and not same[on_box1].any()          # box 1's points against box 1's ceilings
    from types import SimpleNamespace
    from analysis.render.sections import SECTIONS, boxes_section
    text = "\n".join(boxes_section(SimpleNamespace(run=load_run(out))))
    assert boxes_section in SECTIONS and "## Which box measured which point" in text and "| box1 |" in text
    assert boxes_section(SimpleNamespace(run=load_run(tiny_run))) == []        # a plain run: no section


def test_merge_refuses_mixed_runs_unless_told_the_key(tiny_run, tmp_path):
    def other_commit(k, meta):
        meta["git_commit"] = f"commit{k}"
    shards = cut_shards(tiny_run, tmp_path, tweak=other_commit)
    with pytest.raises(ValueError, match=r"git_commit is 'commit0' .* but 'commit1' .*pass --by git_commit"):
        merge(shards, tmp_path / "m1")
    merge(shards, tmp_path / "m2", by=["git_commit"], log=open("/dev/null", "w"))
    with pytest.raises(ValueError, match="never make one run"):
        merge(shards, tmp_path / "m3", by=["sweep_sha1"])


def test_merge_refuses_overlaps_and_gaps(tiny_run, tmp_path):
    quiet = open("/dev/null", "w")
    two = cut_shards(tiny_run, tmp_path / "two", n=2)
    three = cut_shards(tiny_run, tmp_path / "three", n=3)
    with pytest.raises(ValueError, match="measured in both .*overlapping shards"):
        merge([two[0], two[1], three[0]], tmp_path / "dup")
    with pytest.raises(ValueError, match=r"points were measured by none of the runs .* --partial"):
        merge([two[0]], tmp_path / "gap")
    out = merge([two[0]], tmp_path / "partial", partial=True, log=quiet)
    from analysis.load import load_run
    assert load_run(out).partial                                       # the report says so
    other = tmp_path / "other-sweep"
    shutil.copytree(two[1], other)
    (other / "sweep.json").write_text((other / "sweep.json").read_text() + " ")
    with pytest.raises(ValueError, match="does not match the sweep_sha1"):
        merge([two[0], other], tmp_path / "mixed")


def test_merge_cli_says_what_is_wrong_in_one_line(tiny_run, tmp_path, capsys):
    from theory.cliutil import run_main
    shards = cut_shards(tiny_run, tmp_path)
    rc = run_main(bench_main, ["merge", str(shards[0]), "--out", str(tmp_path / "m")], errors=(ValueError,))
    err = capsys.readouterr().err.strip().splitlines()
    assert rc != 0 and len(err) == 1 and "--partial" in err[0]
