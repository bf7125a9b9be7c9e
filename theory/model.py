"""Model specs: the shape theory predicts from (loaders from a config.json or a named preset: theory/hfconfig.py).

What each family holds (MLP kind, biases, norms, windows, experts) comes from the architecture table in
theory/arch.py, applied by theory/hfconfig.py; the defaults here are Llama's. GPT-style models given by width and
depth only have the two-matrix MLP of width 4·d used throughout the seeds.
"""
from dataclasses import dataclass
from typing import Any



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
    # Beyond the Llama shape (theory/arch.py fills these from the config; the defaults are Llama's).
    model_type: str = "llama"
    activation: str = "silu"
    qkv_bias: bool = False
    o_bias: bool = False
    mlp_bias: bool = False
    lm_head_bias: bool = False
    norms_per_layer: int = 2
    qk_norm: bool = False
    learned_positions: int = 0            # rows of a learned position table (GPT-2), 0 for rotary
    positions: str = "rotary"
    parallel_residual: bool = False
    layer_windows: tuple | None = None    # per-layer window when layers differ (None: sliding_window for all)
    num_experts: int = 0                  # mixture of experts: 0 for a dense model
    experts_per_token: int = 0
    moe_intermediate_size: int = 0
    moe_layers: tuple = ()                # per layer: True where the MLP is the expert block
    shared_expert_intermediate_size: int = 0
    assumptions: tuple = ()               # said in the output whenever a choice was made for the user
    hf_config: str | None = None          # the config.json (unwrapped) as JSON text, for bench to build

    def windows(self) -> tuple:
        """The sliding window of every layer (None: full attention)."""
        return self.layer_windows or (self.sliding_window,) * self.num_hidden_layers

    @property
    def num_moe_layers(self) -> int:
        return sum(self.moe_layers) if self.num_experts else 0

    @property
    def q_dim(self) -> int:
        return self.num_attention_heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.num_key_value_heads * self.head_dim

    @property
    def gqa_group(self) -> int:
        return self.num_attention_heads // self.num_key_value_heads

    def norm_params(self, width: int) -> int:
        return {"rmsnorm": width, "layernorm": 2 * width, "nonparam": 0}[self.norm]

    def mlp_params(self, width: int, bias: bool | None = None) -> int:
        """One MLP of inner width `width`: three matrices (gated) or two (dense), with their biases if any."""
        d, bias = self.hidden_size, self.mlp_bias if bias is None else bias
        if self.mlp == "gated":
            return 3 * d * width + (2 * width + d if bias else 0)
        return 2 * d * width + (width + d if bias else 0)

    def param_counts(self) -> dict[str, int]:
        """Exact parameter counts by part, as transformers' model class holds them (tests/test_families.py)."""
        d, L, qd, kvd = self.hidden_size, self.num_hidden_layers, self.q_dim, self.kv_dim
        attention = d * qd * 2 + d * kvd * 2                                        # q, o and k, v
        attention += (qd + 2 * kvd if self.qkv_bias else 0) + (d if self.o_bias else 0)
        attention += 2 * self.norm_params(self.head_dim) if self.qk_norm else 0     # q_norm, k_norm
        moe_layers = self.num_moe_layers
        mlp = (L - moe_layers) * self.mlp_params(self.intermediate_size)
        counts = {"attention": L * attention, "mlp": mlp}
        if moe_layers:
            counts["router"] = moe_layers * d * self.num_experts
            counts["experts"] = moe_layers * self.num_experts * self.mlp_params(self.moe_intermediate_size, False)
            if self.shared_expert_intermediate_size:
                counts["shared_expert"] = moe_layers * (self.mlp_params(self.shared_expert_intermediate_size, False) + d)
        embedding = self.vocab_size * d
        counts.update({
            "norms": (self.norms_per_layer * L + 1) * self.norm_params(d),          # per layer plus the final norm
            "embedding": embedding + self.learned_positions * d,
            "lm_head": (0 if self.tie_word_embeddings else embedding) + (self.vocab_size if self.lm_head_bias else 0),
        })
        return counts

    def active_params(self) -> int:
        """Parameters one token runs through: k of the E experts in each MoE layer."""
        c = self.param_counts()
        if not self.num_moe_layers:
            return sum(c.values())
        return sum(c.values()) - c["experts"] * (self.num_experts - self.experts_per_token) // self.num_experts

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
