"""Build any family theory describes (theory/arch.py) through transformers' own model class: random weights,
offline, from the config.json a ModelSpec carries. Llama and Mistral keep their path in bench/build.py."""
import json

import torch

# Keys of a published config.json that only say where it came from; the config class must not see them.
PROVENANCE_KEYS = ("auto_map", "_name_or_path", "transformers_version", "torch_dtype", "dtype", "architectures")


def family_config(spec, attn_implementation: str = "sdpa"):
    from transformers import AutoConfig
    cfg = {k: v for k, v in json.loads(spec.hf_config).items() if k not in PROVENANCE_KEYS}
    model_type = cfg.pop("model_type")
    config = AutoConfig.for_model(model_type, **cfg)
    config._attn_implementation = attn_implementation if supports_sdpa(config) else "eager"
    return config


def supports_sdpa(config) -> bool:
    """Gemma-2 (logit soft-capping) has no SDPA path in transformers: such families run eager attention, and
    model.config._attn_implementation says so."""
    from transformers import AutoModelForCausalLM
    return bool(getattr(AutoModelForCausalLM._model_mapping[type(config)], "_supports_sdpa", True))


def build_family(spec, device: str, torch_dtype, attn_implementation: str = "sdpa", seed: int = 0):
    """Built directly on the device (rotary and other buffers computed there), then every parameter filled with
    small random values, as bench/build.py does for Llama."""
    from transformers import AutoModelForCausalLM
    cfg = family_config(spec, attn_implementation)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch_dtype)
    gen = torch.Generator(device=device).manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1 and ("norm" in name or "ln" in name) and name.endswith("weight"):
                p.uniform_(0.9, 1.1, generator=gen)
            else:
                bound = p.shape[-1] ** -0.5
                p.uniform_(-bound, bound, generator=gen)
    model.eval()
    return model
