"""The database's files: aiconfigurator_core/systems/data/<system>/<op>/<backend>/<version>/<table>.parquet.

Columns and units, read from the wheel's files (0.12.0) and the upstream collector (github ai-dynamo/aiconfigurator,
collector/helper.py `benchmark_with_power`, collector/vllm/collect_gemm.py, collect_attn.py):
- every `latency` is milliseconds per kernel call: CUDA events around `num_runs` replays of a CUDA graph of the
  call (after warm-up), divided by the replays; GEMM graphs call 6 copies of the layer (distinct weights), so a
  GEMM row is one layer's time with its weights not warm in L2 between calls;
- gemm_perf: m (tokens), n (out features), k (in features), gemm_dtype (bfloat16, fp8, ...);
- context_attention_perf: batch_size, isl (prompt tokens, no prefix), num_heads, num_key_value_heads, head_dim,
  kv_cache_dtype, window_size (0: full) where present; generation_attention_perf: the same with isl 1 and
  step = tokens already in the cache (the kernel reads step + 1); vLLM's timed call includes its KV-cache write;
- custom_allreduce_perf: num_gpus, message_size (elements, collector/network/collect_all_reduce.py), backend;
- moe_perf: num_tokens, hidden_size, inter_size, topk, num_experts, moe_tp_size, moe_ep_size, distribution.
A table may also be a CSV of the same columns (the tests' fixtures); pandas and pyarrow load only here, lazily.
"""
import importlib.util
import os
import re
from functools import lru_cache
from pathlib import Path

from theory.errors import TheoryError
from theory.kerneldb.spec import INSTALL_HINT, KernelDbSpec

ROOT_ENV = "KERNEL_DB_DIR"       # a folder laid out as systems/data/ (tests' fixtures, or an unpacked copy)
LATENCY_S_PER_MS = 1e-3


def data_root() -> Path:
    """The installed package's systems/data folder, found without importing the package (it loads a Rust module)."""
    if os.environ.get(ROOT_ENV):
        root = Path(os.environ[ROOT_ENV])
        if not root.is_dir():
            raise TheoryError(f"{ROOT_ENV}={root} is not a folder")
        return root
    spec = importlib.util.find_spec("aiconfigurator_core")
    if spec is None or not spec.submodule_search_locations:
        raise TheoryError(f"the kernel database is not installed: {INSTALL_HINT}")
    return Path(next(iter(spec.submodule_search_locations))) / "systems" / "data"


def version_key(v: str) -> tuple:
    """'1.3.0rc20' < '1.3.0rc23' < '1.3.0'; '0.5.6.post2' > '0.5.6'."""
    base = re.match(r"[\d.]+", v)
    nums = tuple(int(x) for x in (base.group(0).strip(".").split(".") if base else []) if x)
    tail = v[base.end():] if base else v
    pre = re.match(r"(rc|a|b|\.dev|dev)(\d*)", tail)
    rank = (0, int(pre.group(2) or 0)) if pre else (1, int((re.findall(r"\d+", tail) or [0])[0]))
    return nums + (rank,)


def table_path(root: Path, system: str, op: str, backend: str, version: str | None, table: str) -> tuple[Path, str]:
    where = root / system / op / backend
    versions = sorted((d.name for d in where.iterdir() if d.is_dir() and _file(d, table)), key=version_key) \
        if where.is_dir() else []
    if not versions:
        raise TheoryError(f"the kernel database has no {op}/{table} for {system} with backend {backend}")
    if version is None:
        version = versions[-1]
    elif version not in versions:
        raise TheoryError(f"the kernel database's {system} {op}/{backend} has versions {', '.join(versions)}, "
                          f"not {version}")
    return _file(where / version, table), version


def _file(folder: Path, table: str) -> Path | None:
    for ext in (".parquet", ".csv"):
        if (folder / (table + ext)).is_file():
            return folder / (table + ext)
    return None


@lru_cache(maxsize=64)
def read_rows(path: Path, columns: tuple[str, ...]) -> list[tuple]:
    """The table's rows as plain tuples of `columns` (pandas only here, and only when a database is used)."""
    try:
        import pandas as pd
    except ImportError:
        raise TheoryError(f"reading the kernel database needs pandas: {INSTALL_HINT}") from None
    if path.suffix == ".parquet":
        if importlib.util.find_spec("pyarrow") is None:
            raise TheoryError(f"reading the kernel database's parquet needs pyarrow: {INSTALL_HINT}")
        df = pd.read_parquet(path)
    else:
        df = pd.read_csv(path)
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise TheoryError(f"{path} lacks column(s) {', '.join(missing)}")
    return [tuple(r) for r in df[list(columns)].itertuples(index=False, name=None)]


def load(spec: KernelDbSpec, system: str, op: str, table: str, columns: tuple[str, ...],
         backend: str | None = None) -> tuple[list[tuple], str, Path]:
    path, version = table_path(data_root(), system, op, backend or spec.backend,
                               spec.version if backend is None else None, table)
    return read_rows(path, columns), version, path
