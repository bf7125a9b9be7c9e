"""bench.kernels.paired: a point's kernels and tiny model sampled in rounds between its repeats, and only the rounds
after the repeats its statistics use feed the composed prediction."""
import json

import pandas as pd
import pytest

from bench.devices.cpu import CpuDevice
from bench.kernels.paired import PairedKernels
from bench.timing.repeats import collect
from bench.timing.stats import StopRule
from bench.sweep import Point
from tests.test_repeat import FakeCanary, FakeRun

POINT = Point(hidden_size=64, num_hidden_layers=2, head_dim=16, kv_group=2, vocab_size=256, batch=1,
              prompt_len=8, generated=3)


def test_between_runs_once_after_each_repeat_and_used_indices_skip_the_disturbed():
    run, calls = FakeRun(rel_noise=0.001), []
    between = lambda: calls.append(len(calls))
    log = collect(run, StopRule(6, 50, 100.0), FakeCanary([1.0, 1.0, 1.0, 1.2, 1.0]), base_s=1.0, clock=run.clock,
                  between=between)
    assert len(calls) == len(log.repeats) == 8
    assert log.used_indices == [0, 1, 4, 5, 6, 7]
    assert [log.repeats[i] for i in log.used_indices] == log.used


def test_the_round_follows_the_canary_reading_and_counts_against_the_budget():
    order = []

    class Canary(FakeCanary):
        def read(self, where=""):
            order.append("canary")
            return 1.0

    run = FakeRun(rel_noise=0.5, cost_s=0.25)

    def between():
        order.append("round")
        run.now += 0.25                                    # a round as long as a trajectory

    log = collect(run, StopRule(2, 1000, 3.0), Canary([]), base_s=1.0, clock=run.clock, between=between)
    assert order[:3] == ["canary", "canary", "round"] and order.count("round") == len(log.repeats)
    assert run.now <= 3.0 and len(log.repeats) == 6            # whole repeats planned: trajectory + round


def test_interference_uses_every_round():
    run = FakeRun(rel_noise=0.001)
    log = collect(run, StopRule(6, 50, 100.0), FakeCanary([1.3] * 100), base_s=1.0, max_retries=3, clock=run.clock,
                  between=lambda: None)
    assert log.interference and log.used_indices == list(range(len(log.repeats)))


@pytest.fixture(scope="module")
def paired():
    pk = PairedKernels(POINT, "pid", CpuDevice(threads=1), "fp32", "llc", 2**20)
    pk.prepare()
    assert pk.model is None and not pk.samplers       # nothing held through the cold trajectory and memory probe
    for _ in range(3):
        pk.round()
    yield pk
    pk.close()


def test_rounds_sample_every_kernel_and_the_tiny_model_once_each(paired):
    assert len(paired.tiny_times) == 3 and len(paired.tiny_times[0]) == POINT.generated
    assert paired.kernels and all(len(v) == 3 for v in paired.samples.values())
    assert paired.rounds_s > 0


def test_composed_prediction_takes_only_the_used_rounds(paired):
    kid = next(k for k in paired.samples if k.startswith("lm_head"))
    kept = list(paired.samples[kid])
    try:
        paired.samples[kid][1] = 1.0                       # a round after a disturbed repeat: a huge sample
        parts = paired.parts([0, 2])
        row = next(r for r in parts["kernels"] if r["kernel_id"] == kid)
        assert row["median_s"] < 0.5 and row["samples"] == 2 and row["source"] == "paired"
        lm = [r for r in parts["compose"] if r["kernel_id"] == kid]
        assert lm and all(r["kernel_s"] == row["median_s"] for r in lm)
        assert paired.parts([0, 1, 2])["kernels"] != parts["kernels"]          # the outlier moves the median
        f = parts["framework"]
        assert len(f) == POINT.generated and all(r["tiny_time_s"] > 0 for r in f)
    finally:
        paired.samples[kid][:] = kept


def test_a_dram_point_rotates_copies_and_an_llc_point_rewarms_its_model():
    calls = []
    dram = PairedKernels(POINT, "pid", CpuDevice(threads=1), "fp32", "dram", 2**20)
    dram.prepare(rewarm=lambda: calls.append("dram"))
    dram.round()
    lm = next(s for k, s in dram.samplers.items() if k.startswith("lm_head"))
    assert lm.copies > 1 and calls == []                  # weights stream anyway: nothing to bring back
    dram.close()
    llc = PairedKernels(POINT, "pid", CpuDevice(threads=1), "fp32", "llc", 2**20)
    llc.prepare(rewarm=lambda: calls.append("llc"))
    llc.round()
    llc.round()
    assert calls == ["llc", "llc"] and all(s.copies == 1 for s in llc.samplers.values())
    llc.close()
    assert llc.model is None and not llc.samplers and llc.rewarm is None


def test_the_tiny_run_times_its_kernels_paired(tiny_run):
    meta = json.loads((tiny_run / "run.json").read_text())
    assert meta["kernel_timing"] == "paired"
    assert set(pd.read_csv(tiny_run / "kernels.csv")["source"]) == {"paired"}
    m = pd.read_csv(tiny_run / "measurements.csv")
    for pid, n in m.groupby("point_id")["repeats"].min().items():     # one sample per used repeat, each kernel
        assert (pd.read_csv(tiny_run / "points" / f"{pid}.kernels.csv")["samples"] == n).all()
        wall = json.loads((tiny_run / "points" / f"{pid}.repeat.json").read_text())["wall_s"]
        assert wall["kernels_s"] > 0


def test_cached_kernels_flag_records_the_older_timing(tmp_path):
    from bench.cli import main
    from tests.conftest import TINY_SWEEP
    sweep = tmp_path / "s.json"
    sweep.write_text(json.dumps({**TINY_SWEEP, "grids": [{"axes": {"hidden_size": [32]}}]}))
    rc = main(["run", "--sweep", str(sweep), "--device", "cpu", "--out", str(tmp_path / "out"), "--no-report",
               "--no-profile", "--cached-kernels"])
    assert rc == 0
    run = next(d for d in (tmp_path / "out").iterdir() if d.name != "kernel-cache")
    assert json.loads((run / "run.json").read_text())["kernel_timing"] == "cached"
    assert set(pd.read_csv(run / "kernels.csv")["source"]) <= {"measured", "cache"}


def test_an_untied_embedding_table_is_gathered_not_streamed():
    from bench.kernels.point import cache_state, streamed_bytes
    # d=128, L=4, vocab 8192 (the default sweep's narrowest point): 11.3 MB of weights, 7.1 MB streamed per pass
    p = Point(hidden_size=128, num_hidden_layers=4, head_dim=64, kv_group=2, vocab_size=8192, batch=1,
              prompt_len=64, generated=16)
    spec = p.spec()
    table = 8192 * 128 * 4
    assert streamed_bytes(spec, 1, 80, "fp32") < 8 * 2**20 < streamed_bytes(spec, 1, 80, "fp32") + table
    # resident only within half the effective LLC: 87% of 8 MiB ran at DRAM speed here
    assert cache_state(spec, 1, 80, "fp32", 8 * 2**20) == "dram"
    assert cache_state(spec, 1, 80, "fp32", 16 * 2**20) == "llc"
    import dataclasses
    tied = dataclasses.replace(spec, tie_word_embeddings=True)     # lm_head streams the one table
    assert streamed_bytes(tied, 1, 80, "fp32") == streamed_bytes(spec, 1, 80, "fp32")
