"""Build a real Llama-style model from a theory ModelSpec: random weights, offline, fast.

Built on the meta device (no memory touched), allocated once on the target device, then every parameter is
filled with small random values (never zeros: zeros hide bugs and can take faster paths). Rotary buffers are
computed afresh on the device, since the meta build leaves them empty.
"""
import torch

from theory.model import ModelSpec

TORCH_DTYPES = {"fp32": torch.float32, "tf32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
ATTN_IMPLEMENTATIONS = ("sdpa", "eager")
LLAMA_PATH = ("llama", "mistral")       # built from the spec's shape; other families from their config.json


def hf_config(spec: ModelSpec, attn_implementation: str = "sdpa"):
    from transformers import LlamaConfig, MistralConfig
    common = dict(
        hidden_size=spec.hidden_size, num_hidden_layers=spec.num_hidden_layers,
        num_attention_heads=spec.num_attention_heads, num_key_value_heads=spec.num_key_value_heads,
        head_dim=spec.head_dim, intermediate_size=spec.intermediate_size, vocab_size=spec.vocab_size,
        tie_word_embeddings=spec.tie_word_embeddings, max_position_embeddings=spec.max_position_embeddings,
        rms_norm_eps=spec.rms_norm_eps, hidden_act="silu",
        rope_parameters={"rope_type": "default", "rope_theta": spec.rope_theta},
    )
    if spec.sliding_window is not None:
        cfg = MistralConfig(sliding_window=spec.sliding_window, **common)
    else:
        cfg = LlamaConfig(**common)
    cfg._attn_implementation = attn_implementation
    return cfg


def build_model(spec: ModelSpec, device: str, dtype: str, attn_implementation: str = "sdpa", seed: int = 0):
    """Returns an eval-mode causal LM on `device` in `dtype`, weights uniform in ±1/sqrt(fan_in)."""
    from transformers import AutoModelForCausalLM
    if attn_implementation not in ATTN_IMPLEMENTATIONS:
        raise ValueError(f"attention implementation must be one of {ATTN_IMPLEMENTATIONS}")
    if spec.hf_config is not None and (spec.model_type not in LLAMA_PATH or spec.qkv_bias or spec.mlp_bias):
        from bench.families import build_family
        return build_family(spec, device, TORCH_DTYPES[dtype], attn_implementation, seed)
    if spec.mlp != "gated":
        raise ValueError(f"bench cannot build {spec.name}: a {spec.mlp} MLP without its config.json")
    cfg = hf_config(spec, attn_implementation)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(cfg, dtype=TORCH_DTYPES[dtype])
    model.to_empty(device=device)
    gen = torch.Generator(device=device).manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.uniform_(0.9, 1.1, generator=gen)
            else:
                bound = p.shape[-1] ** -0.5
                p.uniform_(-bound, bound, generator=gen)
    rotary = model.model.rotary_emb
    with torch.device(device):
        model.model.rotary_emb = type(rotary)(cfg)
    model.eval()
    return model


def weight_bytes(model) -> int:
    """Bytes of distinct parameter storage (tied embeddings counted once)."""
    seen, total = set(), 0
    for p in model.parameters():
        if p.data_ptr() not in seen:
            seen.add(p.data_ptr())
            total += p.numel() * p.element_size()
    return total
