"""The calibration and the model in the same minutes: A B A B ... A.

`python -m bench.kernels.versus --calibrate-from` times a whole calibration of the other models (A, as
`python -m bench kernels` would, every kernel timed afresh) before the model's first timed trajectory and again
after each one (B), so that the kernels the prediction rests on span the minutes the model ran in. On this box a
calibration timed a few minutes before the model carried a different speed: six tries against one calibration
(results/never-built-20261202) read the calibration's own decode kernels at x0.59-0.83 of their calibrated time
a minute later, and TPOT 10-35% off. The target model's own measurements never enter a calibration.
"""
import time

import torch

from bench.kernels.calibrate import measure
from bench.model import build_model
from bench.timing.trajectory import run_trajectory


def interleaved(device, spec, per_model, dtype: str, batch: int, prompt_len: int, generated: int, repeats: int,
                attention: str = "sdpa", cache: str = "dynamic", say=None) -> dict:
    """repeats + 1 calibrations around `repeats` timed trajectories of the model (after one warm-up).
    say(text): progress, one line per step."""
    say = say or (lambda text: None)
    t0 = time.perf_counter()
    model = build_model(spec, device.torch_device, dtype, attention)
    build_s = time.perf_counter() - t0
    ids = torch.randint(0, spec.vocab_size, (batch, prompt_len), generator=torch.Generator().manual_seed(0))
    ids = ids.to(device.torch_device)
    mcl = prompt_len + generated if cache == "static" else None
    run_trajectory(model, device, ids, generated, cache, mcl)                           # warm-up
    cals, runs = [], []
    for i in range(repeats + 1):
        cals.append(measure(device, per_model, dtype, "auto", None, None))             # A
        say(f"calibration {i + 1}/{repeats + 1}: {cals[-1]['wall_s']:.1f} s")
        if i < repeats:
            runs.append(run_trajectory(model, device, ids, generated, cache, mcl).times_s)   # B
            say(f"model trajectory {i + 1}/{repeats}: prefill {runs[-1][0] * 1e3:.1f} ms")
    return {"runs": runs, "calibrations": cals, "build_s": build_s}
