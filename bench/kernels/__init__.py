"""Per-op kernels at a model's own shapes: which kernels a point runs (shapes), timing each alone with the
model's cache state (microbench), the per-box kernel cache (cache), the framework's own cost (framework),
and what one point or one workload needs (point, cli)."""

# `python -m bench kernels`'s example, shown by `bench --help` too (kept here: torch-free, below both CLIs)
KERNELS_EXAMPLE = ("example:\n  python -m bench kernels --model tinyllama-1.1b --batch 1 --prompt-len 128\n"
                   "  python -m theory --model tinyllama-1.1b --hardware results/calibration-<...>.json --prompt-len 128")
