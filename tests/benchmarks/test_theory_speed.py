"""Speed of the theory (pytest-benchmark; goal: a grid of 10,000 predictions in ≤1 s on a 2-core box)."""
import itertools

from theory import Workload, load_hardware, load_model, predict
from theory.model import ModelSpec


def test_one_prediction(benchmark):
    m, hw = load_model("llama-2-7b"), load_hardware("a100-sxm-80gb")
    w = Workload(phase="decode", batch=8, context_len=2048)
    assert benchmark(predict, m, hw, w).time_s > 0


def test_grid_of_10000(benchmark):
    base, hw = load_model("llama-2-7b"), load_hardware("h100-sxm-80gb")
    widths = [1024, 2048, 3072, 4096, 5120]
    depths = [8, 16, 24, 32, 40]
    batches = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]
    contexts = [128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536]
    groups = [1, 2, 4, 8]                                          # query heads per kv head (GQA)
    points = [(ModelSpec(**{**base.__dict__, "hidden_size": d, "num_attention_heads": d // 128,
                            "num_key_value_heads": d // 128 // g, "num_hidden_layers": L}), b, c)
              for d, L, b, c, g in itertools.product(widths, depths, batches, contexts, groups)]

    def grid():
        return [predict(m, hw, Workload(phase="decode", batch=b, context_len=c)).time_s for m, b, c in points]

    times = benchmark.pedantic(grid, rounds=3, iterations=1)
    assert len(times) == 10_000 and all(t > 0 for t in times)


def test_a_request_from_a_committed_two_model_calibration(benchmark):
    """A never-built prediction (TTFT and every decode step) from the calibration of one committed interleaved try:
    0.080 s median (3 rounds) with the estimate memo (theory/calibration/predict.py Index), 0.277 s before it
    (this box, 2026-12-03). A leave-one-out over one committed default run: 52 s, 8 min 40 s before."""
    import json
    from pathlib import Path
    from theory.calibration import request
    root = Path(__file__).resolve().parents[2] / "results" / "never-built-interleaved-20261202"
    cal = json.loads((root / "framework-rounds-1" / "tinyllama-1.1b-2" / "calibration-pooled.json").read_text())
    got = benchmark.pedantic(request, (cal, load_model("tinyllama-1.1b"), 1, 128, 8), rounds=3, iterations=1)
    assert got["time_per_output_token_s"] > 0
