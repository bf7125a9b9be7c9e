"""Model specs: read from a Hugging Face config.json as published, or from a named preset.

Llama/Mistral-style models have a gated (SwiGLU) MLP of three matrices; GPT-style models given by
width and depth only have the two-matrix MLP of width 4·d used throughout the seeds.
"""
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from theory.errors import TheoryError
from theory.jsonio import positive_int, positive_number, read_json

PRESET_DIR = Path(__file__).parent / "data" / "models"
DENSE_MLP_TYPES = {"gpt", "gpt2", "gpt3", "gopher"}


@dataclass(frozen=True)
class ModelSpec:
    name: str
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    tie_word_embeddings: bool = False
    sliding_window: int | None = None
    mlp: str = "gated"            # "gated" (gate, up, act·mul, down) or "dense" (fc_in, act, fc_out)
    norm: str = "rmsnorm"         # "rmsnorm" (d weights) or "layernorm" (d weights + d biases)
    rope_theta: float = 10000.0
    max_position_embeddings: int = 4096
    rms_norm_eps: float = 1e-5

    @property
    def q_dim(self) -> int:
        return self.num_attention_heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.num_key_value_heads * self.head_dim

    @property
    def gqa_group(self) -> int:
        return self.num_attention_heads // self.num_key_value_heads

    def param_counts(self) -> dict[str, int]:
        """Exact parameter counts by part (no biases: Llama has none, the seeds ignore them)."""
        d, f, L = self.hidden_size, self.intermediate_size, self.num_hidden_layers
        attention = d * self.q_dim * 2 + d * self.kv_dim * 2          # q, o and k, v
        mlp = (3 if self.mlp == "gated" else 2) * d * f
        norm = d if self.norm == "rmsnorm" else 2 * d
        embedding = self.vocab_size * d
        return {
            "attention": L * attention,
            "mlp": L * mlp,
            "norms": (2 * L + 1) * norm,                                # two per layer plus the final norm
            "embedding": embedding,
            "lm_head": 0 if self.tie_word_embeddings else embedding,
        }

    @property
    def num_params(self) -> int:
        return sum(self.param_counts().values())

    def as_hf_config(self) -> dict[str, Any]:
        """The Llama-style config.json fields bench needs to build this model."""
        return {
            "hidden_size": self.hidden_size, "num_hidden_layers": self.num_hidden_layers,
            "num_attention_heads": self.num_attention_heads, "num_key_value_heads": self.num_key_value_heads,
            "head_dim": self.head_dim, "intermediate_size": self.intermediate_size,
            "vocab_size": self.vocab_size, "tie_word_embeddings": self.tie_word_embeddings,
            "sliding_window": self.sliding_window, "rope_theta": self.rope_theta,
            "max_position_embeddings": self.max_position_embeddings, "rms_norm_eps": self.rms_norm_eps,
        }


def gpt_style(name: str, hidden_size: int, num_hidden_layers: int, vocab_size: int = 0,
              num_attention_heads: int | None = None, tie_word_embeddings: bool = True) -> ModelSpec:
    """A GPT-style spec from width and depth: dense 4·d MLP, n_heads·d_head = d (the seeds' assumption)."""
    heads = num_attention_heads or max(1, hidden_size // 128)
    return from_hf_config({
        "model_type": "gpt", "hidden_size": hidden_size, "num_hidden_layers": num_hidden_layers,
        "num_attention_heads": heads, "vocab_size": vocab_size, "tie_word_embeddings": tie_word_embeddings,
    }, name)


def _int_or_none(cfg: dict, key: str, where: str) -> int | None:
    value = cfg.get(key)
    return None if value is None else positive_int(value, key, where)


def _first(cfg: dict, *keys: str, default):
    """The first of keys present and not null (a 0 or a string is kept, for the checks to refuse)."""
    return next((cfg[k] for k in keys if cfg.get(k) is not None), default)


def from_hf_config(cfg: Any, name: str = "custom") -> ModelSpec:
    """Build a spec from a config.json dict. Unrelated keys are ignored; meaningful ones are honoured."""
    where = f"model {name}"
    if not isinstance(cfg, dict):
        raise TheoryError(f"{where}: expected a JSON object")
    # GPT-2 style names are accepted as aliases.
    aliases = {"n_embd": "hidden_size", "n_layer": "num_hidden_layers", "n_head": "num_attention_heads",
               "n_inner": "intermediate_size"}
    cfg = {**{aliases[k]: v for k, v in cfg.items() if k in aliases and v is not None}, **cfg}
    model_type = str(cfg.get("model_type", "llama")).lower()
    dense = model_type in DENSE_MLP_TYPES or (model_type == "gpt2")
    required = ["hidden_size", "num_hidden_layers", "num_attention_heads"]
    if not dense:
        required.append("intermediate_size")
    missing = [k for k in required if cfg.get(k) is None]
    if missing:
        raise TheoryError(f"{where}: config is missing required key(s) {', '.join(missing)}")
    d = positive_int(cfg["hidden_size"], "hidden_size", where)
    layers = positive_int(cfg["num_hidden_layers"], "num_hidden_layers", where)
    heads = positive_int(cfg["num_attention_heads"], "num_attention_heads", where)
    kv_heads = _int_or_none(cfg, "num_key_value_heads", where) or heads
    head_dim = _int_or_none(cfg, "head_dim", where)
    if head_dim is None:
        if d % heads:
            raise TheoryError(f"{where}: num_attention_heads {heads} does not divide hidden_size {d}")
        head_dim = d // heads
    if heads % kv_heads:
        raise TheoryError(f"{where}: num_key_value_heads {kv_heads} does not divide num_attention_heads {heads}")
    inter = _int_or_none(cfg, "intermediate_size", where) or 4 * d
    vocab = cfg.get("vocab_size", 0)
    if isinstance(vocab, bool) or not isinstance(vocab, int) or vocab < (0 if dense else 1):
        # 0 only for the seeds' GPT-style specs, which leave the embedding out
        raise TheoryError(f"{where}: vocab_size must be a {'non-negative' if dense else 'positive'} integer, got {vocab!r}")
    window = cfg.get("sliding_window")
    window = None if window in (None, 0) else positive_int(window, "sliding_window", where)
    if cfg.get("use_sliding_window") is False:      # Qwen2-style configs carry a window they do not use
        window = None
    tie = cfg.get("tie_word_embeddings", dense)
    return ModelSpec(
        name=name, hidden_size=d, num_hidden_layers=layers, num_attention_heads=heads,
        num_key_value_heads=kv_heads, head_dim=head_dim, intermediate_size=inter, vocab_size=vocab,
        tie_word_embeddings=bool(tie), sliding_window=window,
        mlp="dense" if dense else "gated", norm="layernorm" if dense else "rmsnorm",
        rope_theta=positive_number(_first(cfg, "rope_theta", default=10000.0), "rope_theta", where),
        max_position_embeddings=positive_int(_first(cfg, "max_position_embeddings", "n_positions", default=4096),
                                             "max_position_embeddings", where),
        rms_norm_eps=positive_number(_first(cfg, "rms_norm_eps", default=1e-5), "rms_norm_eps", where),
    )


@lru_cache(maxsize=1)
def model_presets() -> dict[str, ModelSpec]:
    return {p.stem: from_hf_config(read_json(p), p.stem) for p in sorted(PRESET_DIR.glob("*.json"))}


def load_model(name_or_path: str) -> ModelSpec:
    """A preset name, or a path to a config.json."""
    presets = model_presets()
    if name_or_path in presets:
        return presets[name_or_path]
    path = Path(name_or_path)
    if path.suffix == ".json" or path.exists():
        if not path.exists():
            raise TheoryError(f"model config {path} does not exist")
        return from_hf_config(read_json(path), path.stem if path.name != "config.json" else path.parent.name)
    raise TheoryError(f"unknown model {name_or_path!r}; presets: {', '.join(presets)} (or a path to config.json)")
