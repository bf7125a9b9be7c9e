"""Per-op kernels at a model's own shapes: which kernels a point runs (shapes), timing each alone with the
model's cache state (microbench), the per-box kernel cache (cache), the framework's own cost (framework),
and what one point or one workload needs (point, cli)."""
from pathlib import Path

RESULTS_DIR = Path("results")        # `bench run --out`'s default


def kernel_cache_dir(out_root: Path) -> Path:
    """The per-box kernel cache beside the runs: `bench run` uses <--out>/kernel-cache unless given
    --kernel-cache, and `bench kernels` defaults to the same folder for the default --out (results/kernel-cache)."""
    return Path(out_root) / "kernel-cache"


DEFAULT_KERNEL_CACHE = kernel_cache_dir(RESULTS_DIR)

# `python -m bench kernels`'s example, shown by `bench --help` too (kept here: torch-free, below both CLIs)
KERNELS_EXAMPLE = ("example:\n  python -m bench kernels --model tinyllama-1.1b --batch 1 --prompt-len 128\n"
                   "  python -m theory --model tinyllama-1.1b --hardware results/calibration-<...>.json --prompt-len 128")


def first_paragraph(doc: str) -> str:
    """A module docstring's first paragraph as one line: an argparse description, never cut mid-sentence."""
    return " ".join(doc.strip().split("\n\n")[0].split())
