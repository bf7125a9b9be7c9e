"""Architectures as data: what theory needs to know about each Hugging Face `model_type`.

One row per family, read from transformers' modeling code (v5) and checked in tests/test_families.py against the
model class itself built on the meta device. A field given as a (config key, default) pair is read from the
config.json; a plain value is fixed by the architecture.
"""
from dataclasses import dataclass

from theory.errors import TheoryError

Flag = bool | tuple[str, bool]          # fixed, or (config key, default when absent)


@dataclass(frozen=True)
class Arch:
    mlp: str = "gated"                  # "gated": gate, up, act·mul, down; "dense": fc_in, act, fc_out
    activation: str = "silu"
    qkv_bias: Flag = False
    o_bias: Flag = False
    mlp_bias: Flag = False
    lm_head_bias: bool = False
    norm: str = "rmsnorm"               # "rmsnorm" (weight), "layernorm" (weight + bias), "nonparam" (none)
    norms_per_layer: int = 2
    qk_norm: Flag = False               # a per-head-dim norm on q and on k in every layer
    tied: Flag = ("tie_word_embeddings", False)
    positions: str = "rotary"           # "rotary" | "learned" (a table of max positions × d) | "alibi"
    parallel_residual: Flag = False
    window: str = "none"                # "none" | "all" | "alternate" (Gemma-2) | "pattern" (Gemma-3)
                                        # | "max_window_layers" (Qwen2) ; an explicit `layer_types` list always wins
    moe: str = "none"                   # "none" | "mixtral" (num_local_experts) | "qwen" (num_experts, sparse step)
    shared_expert: bool = False         # Qwen2-MoE: one shared expert of shared_expert_intermediate_size, gated
    kv_heads: str = "key"               # "key": num_key_value_heads; "mha": the class ignores that key (one kv
                                        # head per query head); "falcon": multi_query / new_decoder_architecture
    ffn_key: str = "intermediate_size"  # the key the class reads the MLP width from (4·d when absent)


LLAMA = Arch(qkv_bias=("attention_bias", False), o_bias=("attention_bias", False), mlp_bias=("mlp_bias", False))
ARCHS: dict[str, Arch] = {
    "llama": LLAMA,
    "mistral": Arch(window="all"),
    "mixtral": Arch(window="all", moe="mixtral"),
    "qwen2": Arch(qkv_bias=True, window="max_window_layers"),
    "qwen2_moe": Arch(qkv_bias=("qkv_bias", True), window="max_window_layers", moe="qwen", shared_expert=True),
    "qwen3": Arch(qkv_bias=("attention_bias", False), o_bias=("attention_bias", False), qk_norm=True,
                  window="max_window_layers"),
    "qwen3_moe": Arch(qkv_bias=("attention_bias", False), o_bias=("attention_bias", False), qk_norm=True,
                      window="max_window_layers", moe="qwen"),
    "gemma": Arch(activation="gelu_tanh", tied=("tie_word_embeddings", True)),
    "gemma2": Arch(activation="gelu_tanh", norms_per_layer=4, tied=("tie_word_embeddings", True), window="alternate"),
    "gemma3_text": Arch(activation="gelu_tanh", norms_per_layer=4, qk_norm=True, tied=("tie_word_embeddings", True),
                        window="pattern"),
    "phi": Arch(mlp="dense", activation="gelu_tanh", qkv_bias=True, o_bias=True, mlp_bias=True, lm_head_bias=True,
                norm="layernorm", norms_per_layer=1, parallel_residual=True),
    "phi3": Arch(window="all"),
    "gpt2": Arch(mlp="dense", activation="gelu_tanh", qkv_bias=True, o_bias=True, mlp_bias=True, norm="layernorm",
                 tied=("tie_word_embeddings", True), positions="learned", kv_heads="mha", ffn_key="n_inner"),
    "gpt_neox": Arch(mlp="dense", activation="gelu", qkv_bias=("attention_bias", True), o_bias=("attention_bias", True),
                     mlp_bias=True, norm="layernorm", parallel_residual=("use_parallel_residual", True), kv_heads="mha"),
    "falcon": Arch(mlp="dense", activation="gelu", qkv_bias=("bias", False), o_bias=("bias", False),
                   mlp_bias=("bias", False), norm="layernorm", tied=("tie_word_embeddings", True),
                   parallel_residual=("parallel_attn", True), kv_heads="falcon", ffn_key="ffn_hidden_size"),
    "olmo": Arch(norm="nonparam"),
    # The seeds' GPT-style shapes given by width and depth only (no transformers class).
    "gpt": Arch(mlp="dense", activation="gelu_tanh", norm="layernorm", tied=("tie_word_embeddings", True)),
}
ARCHS["gpt3"] = ARCHS["gopher"] = ARCHS["gpt"]
# Names transformers gives a model_type in other spellings.
ALIASES = {"gemma3": "gemma3_text", "qwen1.5_moe": "qwen2_moe"}
# Families refused on purpose: their attention or cache is something theory does not model.
REFUSED = {
    "deepseek_v2": "multi-head latent attention", "deepseek_v3": "multi-head latent attention",
    "mamba": "a state-space model (no KV cache)", "mamba2": "a state-space model (no KV cache)",
    "jamba": "hybrid state-space layers", "recurrent_gemma": "recurrent layers", "rwkv": "recurrent layers",
    "gpt_bigcode": "not yet described in theory/arch.py",
}


def known_types() -> str:
    return ", ".join(sorted(t for t in ARCHS if t not in ("gpt", "gpt3", "gopher")))


def flag(cfg: dict, value: Flag) -> bool:
    if isinstance(value, tuple):
        key, default = value
        got = cfg.get(key)
        return default if got is None else bool(got)
    return value


def resolve(cfg: dict, where: str) -> tuple[str, Arch, list[str]]:
    """The architecture row for a config, and the assumptions made to choose it (said in the output)."""
    notes: list[str] = []
    model_type = cfg.get("model_type")
    if model_type is None:
        # Only the Llama shape is accepted without a model_type: its keys are the common core and say nothing else.
        foreign = sorted(k for k in ("num_local_experts", "num_experts", "multi_query", "n_positions", "parallel_attn",
                                     "rotary_pct", "partial_rotary_factor", "layer_types", "sliding_window_pattern")
                         if cfg.get(k) not in (None, False))
        if foreign:
            raise TheoryError(f"{where}: config has no model_type and key(s) {', '.join(foreign)} make its architecture"
                              f" ambiguous; add model_type (known: {known_types()})")
        model_type = "llama"
        if cfg.get("intermediate_size") is not None:
            notes.append("no model_type: assumed a Llama-shaped decoder (gated SiLU MLP, RMSNorm, no biases)")
    model_type = ALIASES.get(str(model_type).lower(), str(model_type).lower())
    if model_type in REFUSED:
        raise TheoryError(f"{where}: model_type {model_type!r} is {REFUSED[model_type]}, which theory does not model")
    if model_type not in ARCHS:
        raise TheoryError(f"{where}: unknown model_type {model_type!r}; known: {known_types()}")
    return model_type, ARCHS[model_type], notes
