"""Operands and the call for each kernel, as transformers' Llama code runs it (same functions where the model
calls a free function: apply_rotary_pos_emb, repeat_kv, sdpa_attention_forward).

`operands(kernel, device)` returns (cold, hot, fn): `cold` are the tensors a model streams from memory (weights,
the KV cache), copied to rotate when the working set exceeds the last-level cache; `hot` are activations the
previous op just wrote; fn(*cold, *hot) runs the kernel once.
"""
import math
from types import SimpleNamespace

import torch
import torch.nn.functional as F

from bench.model import TORCH_DTYPES

RMS_EPS = 1e-6


def _rand(shape, dt, dev, gen):
    return torch.rand(shape, generator=gen, device=dev, dtype=torch.float32).to(dt) - 0.5


def _rmsnorm(weight, x):
    # LlamaRMSNorm.forward
    h = x.to(torch.float32)
    var = h.pow(2).mean(-1, keepdim=True)
    h = h * torch.rsqrt(var + RMS_EPS)
    return weight * h.to(x.dtype)


def _cos_sin(B, tq, hd, dt, dev):
    pos = torch.arange(tq, device=dev, dtype=torch.float32)
    inv = 1.0 / (10000.0 ** (torch.arange(0, hd, 2, device=dev, dtype=torch.float32) / hd))
    emb = torch.cat([torch.outer(pos, inv)] * 2, dim=-1)
    return emb.cos().to(dt).expand(B, tq, hd).contiguous(), emb.sin().to(dt).expand(B, tq, hd).contiguous()


def _mask(kind, B, tq, S, dt, dev):
    if kind == "bool":                       # static cache decode: slots up to the current position are visible
        m = torch.zeros(B, 1, tq, S, dtype=torch.bool, device=dev)
        m[..., : max(1, S // 2)] = True
        return m
    if kind == "float":                      # eager: additive causal mask
        i = torch.arange(tq, device=dev)[:, None] + (S - tq)
        j = torch.arange(S, device=dev)[None, :]
        m = torch.where(j <= i, 0.0, torch.finfo(dt).min).to(dt)
        return m.expand(B, 1, tq, S).contiguous()
    return None


def operands(k, device, seed: int = 0):
    dt, dev, s = TORCH_DTYPES[k.dtype], device.torch_device, k.dims
    gen = torch.Generator(device=dev).manual_seed(seed)
    r = lambda *shape: _rand(shape, dt, dev, gen)
    if k.impl == "linear":
        return [r(s["k_out"], s["k_in"])], [r(1, s["tokens"], s["k_in"])], lambda w, x: F.linear(x, w)
    if k.impl == "embedding":
        ids = torch.randint(0, s["vocab"], (1, s["tokens"]), generator=gen, device=dev)
        return [r(s["vocab"], s["hidden"])], [ids], lambda w, i: F.embedding(i, w)
    if k.impl == "rmsnorm":
        return [r(s["hidden"])], [r(1, s["tokens"], s["hidden"])], _rmsnorm
    if k.impl == "add":
        return [], [r(1, s["tokens"], s["hidden"]), r(1, s["tokens"], s["hidden"])], torch.add
    if k.impl == "silu_mul":
        return [], [r(1, s["tokens"], s["inter"]), r(1, s["tokens"], s["inter"])], lambda g, u: F.silu(g) * u
    if k.impl == "rotary":
        from transformers.models.llama.modeling_llama import apply_rotary_pos_emb
        B, tq, hd = s["batch"], s["query"], s["head_dim"]
        cos, sin = _cos_sin(B, tq, hd, dt, dev)
        q = r(B, tq, s["heads"], hd).transpose(1, 2)          # the model's view(...).transpose(1, 2)
        kk = r(B, tq, s["kv_heads"], hd).transpose(1, 2)
        return [], [q, kk, cos, sin], apply_rotary_pos_emb
    if k.impl == "cat":                                        # DynamicLayer.update: K and V
        B, kvh, past, tq, hd = s["batch"], s["kv_heads"], s["past"], s["query"], s["head_dim"]
        fn = lambda ck, cv, nk, nv: (torch.cat([ck, nk], dim=-2), torch.cat([cv, nv], dim=-2))
        return [r(B, kvh, past, hd), r(B, kvh, past, hd)], [r(B, kvh, tq, hd), r(B, kvh, tq, hd)], fn
    if k.impl == "index_copy":                                 # StaticLayer.update: K and V
        B, kvh, slots, tq, hd = s["batch"], s["kv_heads"], s["slots"], s["query"], s["head_dim"]
        pos = torch.arange(tq, device=dev) + max(0, slots // 2 - tq)

        def fn(ck, cv, nk, nv):
            ck.index_copy_(2, pos, nk)
            cv.index_copy_(2, pos, nv)
        return [r(B, kvh, slots, hd), r(B, kvh, slots, hd)], [r(B, kvh, tq, hd), r(B, kvh, tq, hd)], fn
    B, h, kvh, tq, S, hd = s["batch"], s["heads"], s["kv_heads"], s.get("query", 1), s["keys"], s["head_dim"]
    if k.impl == "repeat_kv":
        from transformers.integrations.sdpa_attention import repeat_kv
        return [r(B, kvh, S, hd), r(B, kvh, S, hd)], [], lambda kk, v: (repeat_kv(kk, h // kvh), repeat_kv(v, h // kvh))
    q = r(B, tq, h, hd).transpose(1, 2)
    mask = _mask(s["mask"], B, tq, S, dt, dev)
    scale = 1.0 / math.sqrt(hd)
    if k.impl == "sdpa":
        from transformers.integrations.sdpa_attention import sdpa_attention_forward
        module = SimpleNamespace(num_key_value_groups=h // kvh, is_causal=True, training=False)
        return ([r(B, kvh, S, hd), r(B, kvh, S, hd)], [q],
                lambda kk, v, qq: sdpa_attention_forward(module, qq, kk, v, mask, scaling=scale))
    kv_heads = h if kvh < h else kvh            # eager attends the repeated K/V (repeat_kv is its own op)
    if k.impl == "scores":
        def scores(kk, qq):
            w = torch.matmul(qq, kk.transpose(2, 3)) * scale
            return w + mask if mask is not None else w
        return [r(B, kv_heads, S, hd)], [q], scores
    if k.impl == "softmax":
        return [], [r(B, h, tq, S)], lambda w: F.softmax(w, dim=-1, dtype=torch.float32).to(dt)
    if k.impl == "values":
        return ([r(B, kv_heads, S, hd)], [r(B, h, tq, S)],
                lambda v, w: torch.matmul(w, v).transpose(1, 2).contiguous())
    raise ValueError(f"no operands for kernel implementation {k.impl!r}")
