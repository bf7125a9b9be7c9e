"""A Hugging Face config.json, as published, turned into a ModelSpec through the architecture table
(theory/arch.py). Configs come from a file, a model directory, or the local Hugging Face cache by id (offline:
never a download); a multimodal config's `text_config` is unwrapped."""
import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from theory.arch import flag, resolve
from theory.errors import TheoryError
from theory.jsonio import positive_int, positive_number, read_json
from theory.model import ModelSpec

FOUR_D_DEFAULT = ("gpt", "gpt3", "gopher", "gpt2", "falcon")     # MLP width 4·d when the config gives none
ALIASES = {"n_embd": "hidden_size", "n_layer": "num_hidden_layers", "n_head": "num_attention_heads",
           "n_positions": "max_position_embeddings"}


def unwrap(cfg: dict) -> dict:
    """A multimodal config (Gemma-3, Llava, ...) keeps the language model under text_config."""
    text = cfg.get("text_config")
    if isinstance(text, dict):
        inner = dict(text)
        inner.setdefault("model_type", {"gemma3": "gemma3_text"}.get(cfg.get("model_type"), cfg.get("model_type")))
        for key in ("tie_word_embeddings", "vocab_size"):
            if key not in inner and key in cfg:
                inner[key] = cfg[key]
        return inner
    return cfg


def hf_cache_dir() -> Path:
    home = os.environ.get("HF_HUB_CACHE") or os.path.join(
        os.environ.get("HF_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "huggingface"), "hub")
    return Path(home)


def find_config(name_or_path: str) -> Path | None:
    """A config.json path, a directory holding one, or a hub id already in the local cache (newest snapshot)."""
    p = Path(name_or_path)
    if p.is_dir():
        return p / "config.json" if (p / "config.json").exists() else None
    if p.suffix == ".json" or p.exists():
        return p
    if name_or_path.count("/") == 1:
        snaps = hf_cache_dir() / ("models--" + name_or_path.replace("/", "--")) / "snapshots"
        found = sorted(snaps.glob("*/config.json"), key=lambda f: f.stat().st_mtime) if snaps.is_dir() else []
        return found[-1] if found else None
    return None


def read_config(path: Path) -> dict:
    if not path.exists():
        raise TheoryError(f"model config {path} does not exist")
    cfg = read_json(path)
    if not isinstance(cfg, dict):
        raise TheoryError(f"model config {path}: expected a JSON object")
    return cfg


def _int(cfg: dict, key: str, where: str, default: int | None = None) -> int | None:
    v = cfg.get(key)
    return default if v is None else positive_int(v, key, where)


def layer_windows(cfg: dict, kind: str, layers: int, where: str) -> tuple[int | None, ...]:
    """Per-layer sliding window (None: full attention), as transformers' config classes lay them out."""
    window = cfg.get("sliding_window")
    window = None if window in (None, 0) else positive_int(window, "sliding_window", where)
    if cfg.get("use_sliding_window") is False:      # Qwen2-style configs carry a window they do not use
        window = None
    types = cfg.get("layer_types")
    if isinstance(types, list):
        if len(types) != layers:
            raise TheoryError(f"{where}: layer_types has {len(types)} entries for {layers} layers")
        bad = sorted({t for t in types if t not in ("full_attention", "sliding_attention")})
        if bad:
            raise TheoryError(f"{where}: layer type(s) {', '.join(map(str, bad))} are not modelled")
        if "sliding_attention" in types and window is None:
            raise TheoryError(f"{where}: layer_types name sliding layers but sliding_window is not set")
        return tuple(window if t == "sliding_attention" else None for t in types)
    if window is None or kind == "none":
        return (None,) * layers
    if kind == "all":
        return (window,) * layers
    if kind == "alternate":                           # Gemma-2: even layers local, odd layers global
        return tuple(window if (i + 1) % 2 else None for i in range(layers))
    if kind == "pattern":                             # Gemma-3: every sliding_window_pattern-th layer is global
        p = _int(cfg, "sliding_window_pattern", where, 6)
        return tuple(window if (i + 1) % p else None for i in range(layers))
    if kind == "max_window_layers":                   # Qwen2: layers from max_window_layers on use the window
        first = cfg.get("max_window_layers")
        first = layers if first is None else first
        return tuple(window if i >= first else None for i in range(layers))
    raise TheoryError(f"{where}: window layout {kind!r} unknown")


def moe_fields(cfg: dict, kind: str, layers: int, d_ff: int, where: str) -> dict[str, Any]:
    if kind == "none":
        return {}
    if kind == "mixtral":
        experts = _int(cfg, "num_local_experts", where, 8)
        return {"num_experts": experts, "experts_per_token": _int(cfg, "num_experts_per_tok", where, 2),
                "moe_intermediate_size": d_ff, "moe_layers": (True,) * layers}
    experts = _int(cfg, "num_experts", where)
    if experts is None:
        raise TheoryError(f"{where}: MoE config is missing num_experts")
    step = _int(cfg, "decoder_sparse_step", where, 1)
    dense_only = set(cfg.get("mlp_only_layers") or [])
    moe_ff = _int(cfg, "moe_intermediate_size", where)
    if moe_ff is None:
        raise TheoryError(f"{where}: MoE config is missing moe_intermediate_size")
    return {"num_experts": experts, "experts_per_token": _int(cfg, "num_experts_per_tok", where, 2),
            "moe_intermediate_size": moe_ff,
            "moe_layers": tuple(i not in dense_only and (i + 1) % step == 0 for i in range(layers))}


def parse(cfg: Any, name: str):
    """A ModelSpec from a config.json dict. Unrelated keys are ignored; meaningful ones are honoured."""
    where = f"model {name}"
    if not isinstance(cfg, dict):
        raise TheoryError(f"{where}: expected a JSON object")
    cfg = unwrap(cfg)
    cfg = {**{ALIASES[k]: v for k, v in cfg.items() if k in ALIASES and v is not None}, **cfg}
    model_type, arch, notes = resolve(cfg, where)
    dense = arch.mlp == "dense"
    required = ["hidden_size", "num_hidden_layers", "num_attention_heads"]
    if model_type not in FOUR_D_DEFAULT:              # elsewhere the class's own default is not 4·d: ask for it
        required.append(arch.ffn_key)
    missing = [k for k in required if cfg.get(k) is None]
    if missing:
        raise TheoryError(f"{where}: config is missing required key(s) {', '.join(missing)}")
    d = positive_int(cfg["hidden_size"], "hidden_size", where)
    layers = positive_int(cfg["num_hidden_layers"], "num_hidden_layers", where)
    heads = positive_int(cfg["num_attention_heads"], "num_attention_heads", where)
    if arch.kv_heads == "falcon":
        new_arch = bool(cfg.get("new_decoder_architecture"))
        kv_heads = (_int(cfg, "num_kv_heads", where, heads) if new_arch
                    else 1 if cfg.get("multi_query", True) else heads)
    elif arch.kv_heads == "mha":
        kv_heads = heads
    else:
        kv_heads = _int(cfg, "num_key_value_heads", where)
        if kv_heads is None and model_type in OWN_KV_DEFAULT:
            raise TheoryError(f"{where}: config has no num_key_value_heads, and transformers' {model_type} class then "
                              f"uses its own default ({OWN_KV_DEFAULT[model_type]}), not one per head; add the key")
        kv_heads = kv_heads or heads
    head_dim = _int(cfg, "head_dim", where) if not dense else None
    if head_dim is None:
        if d % heads:
            raise TheoryError(f"{where}: num_attention_heads {heads} does not divide hidden_size {d}")
        head_dim = d // heads
    if heads % kv_heads:
        raise TheoryError(f"{where}: num_key_value_heads {kv_heads} does not divide num_attention_heads {heads}")
    inter = _int(cfg, arch.ffn_key, where) or 4 * d
    vocab = cfg.get("vocab_size", 0)
    if isinstance(vocab, bool) or not isinstance(vocab, int) or vocab < (0 if dense else 1):
        # 0 only for the seeds' GPT-style specs, which leave the embedding out
        raise TheoryError(f"{where}: vocab_size must be a {'non-negative' if dense else 'positive'} integer, "
                          f"got {vocab!r}")
    if cfg.get("alibi"):
        notes.append("ALiBi positions: no rotary work counted")
    norms = arch.norms_per_layer
    if model_type == "falcon":                        # one shared norm for a parallel block of the old architecture
        if cfg.get("new_decoder_architecture"):
            norms = 1 if cfg.get("num_ln_in_parallel_attn") == 1 else 2
        else:
            norms = 1 if cfg.get("parallel_attn", True) else 2
    windows = layer_windows(cfg, arch.window, layers, where)
    window_values = {w for w in windows if w is not None}
    max_pos = positive_int(_first(cfg, "max_position_embeddings", default=4096), "max_position_embeddings", where)
    positions = "alibi" if cfg.get("alibi") else arch.positions
    return ModelSpec(
        name=name, hidden_size=d, num_hidden_layers=layers, num_attention_heads=heads,
        num_key_value_heads=kv_heads, head_dim=head_dim, intermediate_size=inter, vocab_size=vocab,
        tie_word_embeddings=flag(cfg, arch.tied), sliding_window=max(window_values) if window_values else None,
        mlp=arch.mlp, norm=arch.norm,
        rope_theta=positive_number(_first(cfg, "rope_theta", default=10000.0), "rope_theta", where),
        max_position_embeddings=max_pos,
        rms_norm_eps=positive_number(_first(cfg, "rms_norm_eps", default=1e-5), "rms_norm_eps", where),
        model_type=model_type, activation=arch.activation,
        qkv_bias=flag(cfg, arch.qkv_bias), o_bias=flag(cfg, arch.o_bias), mlp_bias=flag(cfg, arch.mlp_bias),
        lm_head_bias=arch.lm_head_bias, norms_per_layer=norms,
        qk_norm=flag(cfg, arch.qk_norm) or bool(cfg.get("qk_layernorm")),
        learned_positions=int(max_pos) if positions == "learned" else 0, positions=positions,
        parallel_residual=flag(cfg, arch.parallel_residual),
        layer_windows=windows if window_values and len(set(windows)) > 1 else None,
        shared_expert_intermediate_size=(_int(cfg, "shared_expert_intermediate_size", where, 0)
                                         if arch.shared_expert else 0),
        assumptions=tuple(notes), hf_config=json.dumps(cfg, sort_keys=True) if "model_type" in cfg else None,
        **moe_fields(cfg, arch.moe, layers, inter, where),
    )


# Classes whose num_key_value_heads default is a constant, not the head count (transformers 5.24 *Config dataclass
# defaults: qwen2/configuration_qwen2.py `num_key_value_heads: int | None = 32`, and its __post_init__ falls back to
# num_attention_heads only for an explicit null). Llama, Phi-3 and OLMo default to None, i.e. the head count, as
# theory does; for the others a config without the key is refused rather than guessed.
OWN_KV_DEFAULT = {"mistral": 8, "mixtral": 8, "qwen2": 32, "qwen3": 32, "qwen2_moe": 16, "qwen3_moe": 4, "gemma": 16,
                  "gemma2": 4, "gemma3_text": 4}


def _first(cfg: dict, key: str, default):
    """cfg[key] when present and not null (a 0, a negative or a string is kept, for the checks to refuse)."""
    return cfg[key] if cfg.get(key) is not None else default


PRESET_DIR = Path(__file__).parent / "data" / "models"


def gpt_style(name: str, hidden_size: int, num_hidden_layers: int, vocab_size: int = 0,
              num_attention_heads: int | None = None, tie_word_embeddings: bool = True) -> ModelSpec:
    """A GPT-style spec from width and depth: dense 4·d MLP, n_heads·d_head = d (the seeds' assumption)."""
    heads = num_attention_heads or max(1, hidden_size // 128)
    return from_hf_config({
        "model_type": "gpt", "hidden_size": hidden_size, "num_hidden_layers": num_hidden_layers,
        "num_attention_heads": heads, "vocab_size": vocab_size, "tie_word_embeddings": tie_word_embeddings,
    }, name)


def from_hf_config(cfg: Any, name: str = "custom") -> ModelSpec:
    """Build a spec from a config.json dict through the architecture table (theory/arch.py)."""
    return parse(cfg, name)


@lru_cache(maxsize=1)
def model_presets() -> dict[str, ModelSpec]:
    return {p.stem: from_hf_config(read_json(p), p.stem) for p in sorted(PRESET_DIR.glob("*.json"))}


def load_model(name_or_path: str) -> ModelSpec:
    """A preset name, a path to a config.json or a model directory, or a hub id in the local HF cache (offline)."""
    presets = model_presets()
    if name_or_path in presets:
        return presets[name_or_path]
    path = find_config(name_or_path)
    if path is None:
        if Path(name_or_path).is_dir():
            raise TheoryError(f"model directory {name_or_path} holds no config.json")
        raise TheoryError(f"unknown model {name_or_path!r}; presets: {', '.join(presets)} (or a config.json, a model"
                          " directory, or a hub id already in the local Hugging Face cache: nothing is downloaded)")
    name = path.stem if path.name != "config.json" else path.parent.name
    return from_hf_config(read_config(path), name)
