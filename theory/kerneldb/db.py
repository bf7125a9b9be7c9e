"""One system's tables from the database, indexed for lookups, plus the two figures derived from them."""
import statistics
from dataclasses import dataclass, field

from theory.errors import TheoryError
from theory.kerneldb.interp import Grid
from theory.kerneldb.spec import KernelDbSpec
from theory.kerneldb.tables import LATENCY_S_PER_MS, load

DB_DTYPES = {"bf16": "bfloat16", "fp16": "bfloat16", "fp8": "fp8"}    # the tables time bf16 (and fp8) only
MOE_DISTRIBUTION = "power_law_1.01"        # the most even token->expert spread the moe table has
BANDWIDTH_MIN_BYTES = 1 << 30              # generation-attention rows whose K+V reads are >= 1 GiB: far past L2
FLOOR_KERNELS = 20                         # the per-kernel floor: median of the database's 20 fastest GEMM calls

GEMM_COLS = ("gemm_dtype", "n", "k", "m", "latency")
ATTN_COLS = ("attn_dtype", "kv_cache_dtype", "head_dim", "num_heads", "num_key_value_heads", "batch_size",
             "isl", "step", "latency")
AR_COLS = ("allreduce_dtype", "backend", "num_gpus", "message_size", "latency")
MOE_COLS = ("moe_dtype", "distribution", "hidden_size", "inter_size", "topk", "num_experts", "moe_tp_size",
            "moe_ep_size", "num_tokens", "latency")


@dataclass
class Database:
    spec: KernelDbSpec
    system: str
    dtype: str
    versions: dict[str, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    _cache: dict = field(default_factory=dict)

    def _rows(self, op: str, table: str, cols: tuple[str, ...], backend: str | None = None):
        rows, version, path = load(self.spec, self.system, op, table, cols, backend)
        self.versions[table] = version
        self.files[table] = str(path)
        return rows

    def gemm(self) -> Grid:
        if "gemm" not in self._cache:
            want = DB_DTYPES.get(self.dtype)
            rows = [r for r in self._rows("gemm", "gemm_perf", GEMM_COLS) if r[0] == want]
            if not rows:
                raise TheoryError(f"the kernel database's {self.system} gemm table has no {self.dtype} rows")
            self._cache["gemm"] = Grid(("n", "k", "m"), ((r[1:4], r[4] * LATENCY_S_PER_MS) for r in rows),
                                       {"m": 1.0, "n": 1.0, "k": 1.0})
        return self._cache["gemm"]

    def attention(self, phase: str, kv_dtype: str) -> dict[int, Grid]:
        """head_dim -> Grid over (num_heads, num_key_value_heads, batch_size, isl or step), full attention only."""
        key = ("attention", phase, kv_dtype)
        if key not in self._cache:
            table = "context_attention_perf" if phase == "prefill" else "generation_attention_perf"
            cols = ATTN_COLS + (("window_size",) if self._has_window(table) else ())
            want_kv = DB_DTYPES.get(kv_dtype)
            by_hd: dict[int, list] = {}
            for r in self._rows("attention", table, cols):
                if r[0] != "bfloat16" or r[1] != want_kv or (len(r) > len(ATTN_COLS) and r[-1] != 0):
                    continue
                length = r[6] if phase == "prefill" else r[7]
                by_hd.setdefault(r[2], []).append(((r[3], r[4], r[5], length), r[8] * LATENCY_S_PER_MS))
            if not by_hd:
                raise TheoryError(f"the kernel database's {self.system} {table} has no {kv_dtype} KV-cache rows")
            axis = "isl" if phase == "prefill" else "step"
            self._cache[key] = {hd: Grid(("num_heads", "num_key_value_heads", "batch_size", axis), rows,
                                         {"batch_size": 1.0, axis: 2.0 if phase == "prefill" else 1.0})
                                for hd, rows in by_hd.items()}
        return self._cache[key]

    def _has_window(self, table: str) -> bool:
        try:
            self._rows("attention", table, ATTN_COLS + ("window_size",))
            return True
        except TheoryError as e:
            if "lacks column" in str(e):
                return False
            raise

    def allreduce(self, runtime: str) -> Grid:
        key = ("allreduce", runtime)
        if key not in self._cache:
            rows = [r for r in self._rows("comm", "custom_allreduce_perf", AR_COLS)
                    if r[0] == "bfloat16" and str(r[1]).endswith("graph" if runtime == "graphs" else "eager")]
            if not rows:
                raise TheoryError(f"the kernel database's {self.system} comm table has no bf16 {runtime} all-reduce")
            self._cache[key] = Grid(("num_gpus", "message_size"), ((r[2:4], r[4] * LATENCY_S_PER_MS) for r in rows),
                                    {"message_size": 1.0})
        return self._cache[key]

    def moe(self) -> dict[tuple, Grid]:
        """(hidden, inter, topk, experts) -> Grid over num_tokens, at tp = ep = 1 and the most even distribution."""
        if "moe" not in self._cache:
            want = DB_DTYPES.get(self.dtype)
            by_shape: dict[tuple, list] = {}
            for r in self._rows("moe", "moe_perf", MOE_COLS):
                if r[0] == want and r[1] == MOE_DISTRIBUTION and r[6] == 1 and r[7] == 1:
                    by_shape.setdefault(tuple(r[2:6]), []).append(((r[8],), r[9] * LATENCY_S_PER_MS))
            self._cache["moe"] = {k: Grid(("num_tokens",), v, {"num_tokens": 1.0}) for k, v in by_shape.items()}
        return self._cache["moe"]

    def memory_bandwidth_bytes_per_s(self, kv_dtype: str = "bf16") -> float:
        """Median bytes/s of the generation-attention rows that read >= 1 GiB of K and V: memory-bound kernels."""
        if "bw" not in self._cache:
            width = 2                                          # bf16 K/V, the rows used
            rates = []
            for hd, grid in self.attention("decode", "bf16").items():
                for (h, kv, b, step), lat in _leaves(grid):
                    kv_bytes = 2 * b * (step + 1) * kv * hd * width
                    if kv_bytes >= BANDWIDTH_MIN_BYTES:
                        rates.append(kv_bytes / lat)
            if not rates:
                raise TheoryError(f"the kernel database's {self.system} has no generation-attention row reading "
                                  ">= 1 GiB to derive a bandwidth from")
            self._cache["bw"] = statistics.median(rates)
        return self._cache["bw"]

    def kernel_floor_s(self) -> float:
        """The median of the database's fastest GEMM calls: what one tiny kernel costs in a CUDA graph."""
        if "floor" not in self._cache:
            lats = sorted(lat for _, lat in _leaves(self.gemm()))
            self._cache["floor"] = statistics.median(lats[:FLOOR_KERNELS])
        return self._cache["floor"]


def _leaves(grid: Grid):
    def walk(node, key):
        for k, v in node.items():
            if isinstance(v, dict):
                yield from walk(v, key + (k,))
            else:
                for lat in v:
                    yield key + (k,), lat
    yield from walk(grid.tree, ())
