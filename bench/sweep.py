"""Sweeps: a JSON file of grids over model shape and workload, expanded into points.

File shape (unknown keys rejected everywhere):
  {"name": str, "description": str, "warmup_s": float,
   "min_repeats": int, "max_repeats": int, "max_point_s": float,   (adaptive repeats, bench/timing/repeats.py)
   "repeats": int,                                                  (older files: exactly this many, not adaptive)
   "defaults": {<point field>: value, ...},
   "grids": [{"axes": {<point field>: [values, ...]}, "<point field>": value, ...}, ...]}
Each grid is the cartesian product of its axes over the defaults (and the grid's own fixed fields).
Width axes derive heads from head_dim: heads = hidden_size / head_dim, kv heads = heads / kv_group.
"""
import hashlib
import itertools
import json
import math
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from bench.modes import EXECUTIONS, check_execution
from theory.capacity import check_positions
from theory.errors import TheoryError
from theory.jsonio import check_keys, read_json
from theory.model import ModelSpec
from theory.hfconfig import from_hf_config, load_model

SWEEP_DIR = Path(__file__).parent / "sweeps"
DTYPES = ("auto", "fp32", "bf16", "fp16")
ATTENTIONS = ("sdpa", "eager")
CACHES = ("dynamic", "static")
MAX_WARMUP_S = 600.0          # warm-up per point; more is a typo, not a plan


@dataclass(frozen=True)
class Point:
    hidden_size: int = 256
    num_hidden_layers: int = 2
    head_dim: int = 64
    kv_group: int = 1             # query heads per kv head (1 = MHA)
    mlp_ratio: float = 2.6875     # Llama-2: 11008 / 4096
    vocab_size: int = 32000
    model: str | None = None      # a preset or config.json path; overrides the shape fields above
    batch: int = 1
    prompt_len: int = 32
    generated: int = 8            # tokens generated: the prefill emits one, then generated−1 decode steps
    dtype: str = "auto"           # auto: fp32 on CPU, bf16 on CUDA
    attention: str = "sdpa"
    cache: str = "dynamic"
    execution: str = "eager"      # bench.modes: eager | compile | compile-static | cudagraphs

    def spec(self) -> ModelSpec:
        if self.model:
            return load_model(self.model)
        heads = self.hidden_size // self.head_dim
        inter = int(round(self.mlp_ratio * self.hidden_size / 16)) * 16
        return from_hf_config({
            "hidden_size": self.hidden_size, "num_hidden_layers": self.num_hidden_layers,
            "num_attention_heads": heads, "num_key_value_heads": max(1, heads // self.kv_group),
            "head_dim": self.head_dim, "intermediate_size": inter, "vocab_size": self.vocab_size,
            "max_position_embeddings": max(4096, self.prompt_len + self.generated),
        }, f"d{self.hidden_size}-L{self.num_hidden_layers}")

    def resolved_dtype(self, device_kind: str) -> str:
        if self.dtype != "auto":
            return self.dtype
        return "bf16" if device_kind == "cuda" else "fp32"

    @property
    def max_cache_len(self) -> int | None:
        return self.prompt_len + self.generated if self.cache == "static" else None

    def point_id(self, device_kind: str) -> str:
        """Hash of the point's parameters with the dtype resolved (the device itself is left out)."""
        d = asdict(self)
        d["dtype"] = self.resolved_dtype(device_kind)
        if d["execution"] == "eager":
            del d["execution"]                  # eager points keep the ids they had before the axis existed
        return hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]

    def label(self) -> str:
        shape = self.model or f"d={self.hidden_size} L={self.num_hidden_layers}"
        return f"{shape} b={self.batch} T={self.prompt_len} G={self.generated} {self.dtype} {self.attention} {self.cache}" + (
            "" if self.execution == "eager" else f" {self.execution}")


POINT_FIELDS = {f.name: f.type for f in fields(Point)}


@dataclass(frozen=True)
class Sweep:
    name: str
    description: str
    repeats: int
    warmup_s: float
    points: tuple[Point, ...]
    source_text: str
    min_repeats: int = 6
    max_repeats: int = 30
    max_point_s: float = 6.0
    max_retries: int | None = None          # disturbed repeats measured again; None: min_repeats; 0 for `repeats`

    def stop_rule(self):
        from bench.timing.stats import StopRule
        return StopRule(self.min_repeats, self.max_repeats, self.max_point_s)

    @property
    def sha1(self) -> str:
        return hashlib.sha1(self.source_text.encode()).hexdigest()


def _check_point_values(values: dict, where: str) -> dict:
    check_keys(values, set(POINT_FIELDS), set(), where)
    for k, v in values.items():
        if k in ("dtype", "attention", "cache", "execution"):
            allowed = {"dtype": DTYPES, "attention": ATTENTIONS, "cache": CACHES, "execution": EXECUTIONS}[k]
            if v not in allowed:
                raise TheoryError(f"{where}: {k} must be one of {', '.join(allowed)}, got {v!r}")
        elif k == "model":
            if not isinstance(v, str):
                raise TheoryError(f"{where}: model must be a preset name or a config path")
        elif k == "mlp_ratio":
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < math.inf:
                raise TheoryError(f"{where}: mlp_ratio must be a positive finite number, got {v!r}")
        elif isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise TheoryError(f"{where}: {k} must be a positive integer, got {v!r}")
    return values


def _validate_point(p: Point, where: str) -> None:
    if p.model is None:
        if p.hidden_size % p.head_dim:
            raise TheoryError(f"{where}: head_dim {p.head_dim} does not divide hidden_size {p.hidden_size}")
        heads = p.hidden_size // p.head_dim
        if heads % p.kv_group:
            raise TheoryError(f"{where}: kv_group {p.kv_group} does not divide the {heads} heads of width {p.hidden_size}")
    reason = check_execution(p.execution, p.cache)
    if reason:
        raise TheoryError(f"{where}: {reason}")
    spec = p.spec()
    if spec.head_dim % 2:
        raise TheoryError(f"{where}: rotary embeddings need an even head_dim, got {spec.head_dim}")
    if spec.mlp != "gated" and spec.hf_config is None:     # other families build from their config.json
        raise TheoryError(f"{where}: bench builds {p.model} only from a config.json naming its model_type")
    try:                        # a learned position table too short for the trajectory: refused before anything runs
        check_positions(spec, p.prompt_len + p.generated - 1)     # the last decode step feeds this many positions
    except TheoryError as e:
        raise TheoryError(f"{where}: {p.label()}: {e}") from None


def parse_sweep(obj, text: str, where: str) -> Sweep:
    check_keys(obj, {"name", "description", "repeats", "warmup_s", "defaults", "grids", *REPEAT_KEYS}, {"name", "grids"}, where)
    defaults = _check_point_values(obj.get("defaults", {}), f"{where} defaults")
    if not isinstance(obj["grids"], list) or not obj["grids"]:
        raise TheoryError(f"{where}: grids must be a non-empty list")
    points, seen = [], set()
    for gi, grid in enumerate(obj["grids"]):
        gwhere = f"{where} grids[{gi}]"
        if not isinstance(grid, dict):
            raise TheoryError(f"{gwhere}: expected an object")
        axes = grid.get("axes", {})
        fixed = _check_point_values({k: v for k, v in grid.items() if k != "axes"}, gwhere)
        check_keys(axes, set(POINT_FIELDS), set(), f"{gwhere} axes")
        for k, vs in axes.items():
            if not isinstance(vs, list) or not vs:
                raise TheoryError(f"{gwhere} axes: {k} must be a non-empty list")
            for v in vs:
                _check_point_values({k: v}, f"{gwhere} axes")
        names = list(axes)
        for combo in itertools.product(*(axes[n] for n in names)):
            p = Point(**{**defaults, **fixed, **dict(zip(names, combo))})
            _validate_point(p, gwhere)
            if p not in seen:                    # grids may overlap (a width sweep and a depth sweep share a point)
                seen.add(p)
                points.append(p)
    warmup = obj.get("warmup_s", 1.0)
    if isinstance(warmup, bool) or not isinstance(warmup, (int, float)) or not 0 <= warmup <= MAX_WARMUP_S:
        raise TheoryError(f"{where}: warmup_s must be a number of seconds in [0, {MAX_WARMUP_S}], got {warmup!r}")
    lo, hi, budget = _repeat_policy(obj, where)
    return Sweep(str(obj["name"]), str(obj.get("description", "")), lo, float(warmup), tuple(points), text, lo, hi,
                 budget, 0 if "repeats" in obj else None)


REPEAT_KEYS = ("min_repeats", "max_repeats", "max_point_s")


def _repeat_policy(obj: dict, where: str) -> tuple[int, int, float]:
    """(min_repeats, max_repeats, max_point_s). An older file's `repeats: n` means exactly n (min = max = n)."""
    for k in ("repeats", "min_repeats", "max_repeats"):
        v = obj.get(k, 1)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise TheoryError(f"{where}: {k} must be a positive integer")
    budget = obj.get("max_point_s", 6.0)
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not 0 < budget <= 86400:   # NaN too
        raise TheoryError(f"{where}: max_point_s must be a positive number of seconds")
    if "repeats" in obj:
        if any(k in obj for k in ("min_repeats", "max_repeats")):
            raise TheoryError(f"{where}: give either repeats (a fixed count) or min_repeats/max_repeats, not both")
        return obj["repeats"], obj["repeats"], float(budget)
    lo, hi = obj.get("min_repeats", 6), obj.get("max_repeats", 30)
    if hi < lo:
        raise TheoryError(f"{where}: max_repeats {hi} is below min_repeats {lo}")
    return lo, hi, float(budget)


def load_sweep(name_or_path: str, device_kind: str = "cpu") -> tuple[Sweep, Path]:
    """A shipped sweep name (`default` picks default-cpu or default-cuda), or a path to a sweep JSON."""
    if name_or_path == "default":
        name_or_path = f"default-{device_kind}"
    path = SWEEP_DIR / f"{name_or_path}.json"
    if not path.exists():
        path = Path(name_or_path)
        if not path.exists():
            shipped = sorted(p.stem for p in SWEEP_DIR.glob("*.json"))
            raise TheoryError(f"unknown sweep {name_or_path!r}; shipped: default, {', '.join(shipped)} (or a path)")
    text = path.read_text()
    sweep = parse_sweep(read_json(path), text, str(path))
    for p in sweep.points:                     # a mode the device lacks (cudagraphs on CPU) is refused here
        reason = check_execution(p.execution, p.cache, device_kind)
        if reason:
            raise TheoryError(f"{path}: {p.label()}: {reason}")
    return sweep, path.resolve()


def load_run_sweep(run_dir: Path) -> tuple[Sweep, dict]:
    """The sweep a run directory recorded (sweep.json), checked against run.json's sha1 and the original file,
    and the run's run.json: what `resume` and an isolated point's child start from."""
    meta_path = run_dir / "run.json"
    if not meta_path.exists():
        raise TheoryError(f"{run_dir} is not a run directory (no run.json)")
    meta = read_json(meta_path)
    check_keys(meta, set(meta) if isinstance(meta, dict) else set(), {"sweep_path", "sweep_sha1", "device"},
               str(meta_path))
    text = (run_dir / "sweep.json").read_text()
    if hashlib.sha1(text.encode()).hexdigest() != meta["sweep_sha1"]:
        raise TheoryError(f"{run_dir / 'sweep.json'} does not match the sweep_sha1 recorded in {meta_path}; "
                          f"refusing to resume (start a new run)")
    original = Path(meta["sweep_path"])
    if original.exists() and original.read_text() != text:
        raise TheoryError(f"sweep file {original} changed since this run started; refusing to resume "
                          f"(start a new run, or restore the file)")
    sweep = parse_sweep(json.loads(text), text, str(run_dir / "sweep.json"))
    shard = meta.get("shard")
    return (sweep if shard is None else restrict(sweep, meta["device"], shard["point_ids"])), meta


def restrict(sweep: Sweep, device_kind: str, point_ids: list[str]) -> Sweep:
    """The sweep with only the given points, in sweep order (a shard, bench/run/shard.py); every id must be one of
    its points. The source text (and so the sha1) stays the whole sweep's."""
    wanted = set(point_ids)
    kept = tuple(p for p in sweep.points if p.point_id(device_kind) in wanted)
    if len(kept) != len(wanted):
        raise TheoryError(f"run.json's shard names {len(wanted) - len(kept)} point(s) that sweep {sweep.name} "
                          f"does not have; the run directory is damaged")
    return replace(sweep, points=kept)
