"""A real model from a theory ModelSpec, its KV cache and their bytes: random weights, offline, fast.

Llama and Mistral are built on the meta device (no memory touched), allocated once on the target device, then
every parameter is filled with small random values (never zeros: zeros hide bugs and can take faster paths). Rotary buffers are
computed afresh on the device, since the meta build leaves them empty. Any other family theory describes
(theory/arch.py) is built through transformers' own model class from the config.json the spec carries.

HF quirk worth knowing: a sliding-window dynamic layer keeps window−1 tokens while get_seq_length() reports
all tokens seen, so cache bytes are read from the tensors, never derived from the reported length.
"""
import json

import torch

from theory.model import ModelSpec

TORCH_DTYPES = {"fp32": torch.float32, "tf32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
ATTN_IMPLEMENTATIONS = ("sdpa", "eager")
LLAMA_PATH = ("llama", "mistral")       # built from the spec's shape; other families from their config.json
CACHES = ("dynamic", "static")
# Keys of a published config.json that only say where it came from; the config class must not see them.
PROVENANCE_KEYS = ("auto_map", "_name_or_path", "transformers_version", "torch_dtype", "dtype", "architectures")


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
    small random values, as build_model does for Llama."""
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


HELD_CACHES = "_bench_static_caches"     # set by hold_static_caches: max_cache_len -> the one StaticCache


def hold_static_caches(model) -> None:
    """From now on new_cache hands this model one StaticCache per max_cache_len, reset() between trajectories,
    instead of a new one each time. A compiled model needs it: CUDA graph trees re-record a graph whose static
    inputs (the cache tensors transformers marks with torch._dynamo.mark_static_address) land at new addresses.
    transformers 4.x's generate reused its cache the same way (`self._cache.reset()` in `_get_cache`); eager
    models keep a fresh cache, so their prefill still allocates it (the memory columns read that)."""
    setattr(model, HELD_CACHES, {})


def new_cache(model, cache: str, max_cache_len: int | None):
    from transformers import DynamicCache, StaticCache
    if cache == "dynamic":
        return DynamicCache(config=model.config)
    if cache != "static":
        raise ValueError(f"cache must be one of {CACHES}, got {cache!r}")
    held = getattr(model, HELD_CACHES, None)
    if held is None:
        return StaticCache(config=model.config, max_cache_len=max_cache_len)
    if max_cache_len in held:
        with torch.inference_mode():          # its tensors were made by passes under inference_mode
            held[max_cache_len].reset()       # Cache.reset: every layer's tensors zeroed in place, length 0
    else:
        held[max_cache_len] = StaticCache(config=model.config, max_cache_len=max_cache_len)
    return held[max_cache_len]


class CacheUnused(RuntimeError):
    """A forward pass did not grow the cache it was given (a transformers release that ignores the argument)."""


def cache_argument(model) -> str:
    """The forward's keyword for the KV cache: `cache` where the installed transformers has it (5.x deprecates
    `past_key_values` for it: deprecate_kwarg("past_key_values", "5.40.0", new_name="cache") on every Llama
    forward), else `past_key_values`. Read from the class, since a compiled model's forward is a wrapper."""
    import inspect
    params = inspect.signature(type(model).forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def seq_length(cache) -> int:
    """Tokens the cache holds (a StaticCache keeps it in a device tensor: reading it synchronises)."""
    return int(cache.get_seq_length())


class Passes:
    """Every forward pass bench runs goes through one of these: the cache handed in by the current argument
    name, and check() (after the passes, outside any timed region) fails loudly when the cache did not grow by
    the tokens passed, i.e. the forward ignored the cache it was given."""

    def __init__(self, model, cache):
        self.model, self.cache, self.kwarg = model, cache, cache_argument(model)
        self.start, self.tokens = seq_length(cache), 0

    def __call__(self, tokens):
        out = self.model(input_ids=tokens, **{self.kwarg: self.cache}, use_cache=True, logits_to_keep=1)
        self.tokens += tokens.shape[-1]
        return out

    def check(self) -> None:
        grown = seq_length(self.cache) - self.start
        if grown != self.tokens:
            raise CacheUnused(f"the cache passed as {self.kwarg}= grew by {grown} tokens over passes of "
                              f"{self.tokens}: this transformers release ignored it (pin the version bench was "
                              f"tested with, see pyproject.toml)")


def cache_tensor_bytes(cache) -> int:
    total = 0
    for layer in cache.layers:
        for t in (getattr(layer, "keys", None), getattr(layer, "values", None)):
            if t is not None:
                total += t.numel() * t.element_size()
    return total
