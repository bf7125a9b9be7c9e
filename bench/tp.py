"""A Megatron-style tensor-parallel Llama decoder layer over torch.distributed: q/k/v/gate/up split by
columns (heads / MLP width), o/down split by rows, one all-reduce after attention and one after the MLP.
Every rank builds the same random layer from one seed, checks its sharded output against the unsharded
transformers layer, then times prefill and decode steps with compute and communication kept apart."""
import statistics
import time

import torch
import torch.distributed as dist
import torch.nn.functional as F

TP_COLUMNS = ["world_size", "hidden_size", "num_attention_heads", "num_key_value_heads", "intermediate_size",
              "phase", "batch", "tokens", "context_len", "time_s", "compute_s", "comm_s", "allreduces",
              "allreduce_bytes", "max_abs_diff", "reference_max_abs", "backend"]


def reference_layer(hidden: int, heads: int, kv_heads: int, inter: int, seed: int = 0):
    from transformers import LlamaConfig
    from transformers.models.llama.modeling_llama import LlamaDecoderLayer, LlamaRotaryEmbedding
    cfg = LlamaConfig(hidden_size=hidden, num_attention_heads=heads, num_key_value_heads=kv_heads,
                      intermediate_size=inter, num_hidden_layers=1, vocab_size=16, max_position_embeddings=4096)
    cfg._attn_implementation = "sdpa"
    layer = LlamaDecoderLayer(cfg, layer_idx=0).eval()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in layer.named_parameters():
            if name.endswith("norm.weight"):
                p.uniform_(0.9, 1.1, generator=gen)
            else:
                p.uniform_(-p.shape[-1] ** -0.5, p.shape[-1] ** -0.5, generator=gen)
    return layer, LlamaRotaryEmbedding(cfg), cfg


def shard(layer, rank: int, world: int) -> dict:
    a, m = layer.self_attn, layer.mlp
    hd = a.head_dim
    heads, kv = a.config.num_attention_heads // world, a.config.num_key_value_heads // world
    q_cols = slice(rank * heads * hd, (rank + 1) * heads * hd)
    kv_cols = slice(rank * kv * hd, (rank + 1) * kv * hd)
    f = m.gate_proj.weight.shape[0] // world
    f_cols = slice(rank * f, (rank + 1) * f)
    return {"q": a.q_proj.weight[q_cols].contiguous(), "k": a.k_proj.weight[kv_cols].contiguous(),
            "v": a.v_proj.weight[kv_cols].contiguous(), "o": a.o_proj.weight[:, q_cols].contiguous(),
            "gate": m.gate_proj.weight[f_cols].contiguous(), "up": m.up_proj.weight[f_cols].contiguous(),
            "down": m.down_proj.weight[:, f_cols].contiguous(), "heads": heads, "kv": kv, "hd": hd,
            "norm1": layer.input_layernorm, "norm2": layer.post_attention_layernorm}


def tp_forward(ctx, w: dict, x, cos, sin, past_kv=None, clock=None):
    """x: (batch, tokens, hidden) replicated. past_kv: this rank's (K, V) of earlier tokens, or None."""
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    def allreduce(t):
        ctx.sync()
        t0 = time.perf_counter()
        dist.all_reduce(ctx.check(t))
        ctx.sync()
        if clock is not None:
            clock["comm_s"] += time.perf_counter() - t0
            clock["allreduces"] += 1
            clock["bytes"] += t.numel() * t.element_size()
        return t

    b, n, _ = x.shape
    h = w["norm1"](x)
    q = F.linear(h, w["q"]).view(b, n, w["heads"], w["hd"]).transpose(1, 2)
    k = F.linear(h, w["k"]).view(b, n, w["kv"], w["hd"]).transpose(1, 2)
    v = F.linear(h, w["v"]).view(b, n, w["kv"], w["hd"]).transpose(1, 2)
    q, k = apply_rotary_pos_emb(q, k, cos, sin)
    if past_kv is not None:
        k, v = torch.cat([past_kv[0], k], dim=2), torch.cat([past_kv[1], v], dim=2)
    attn = F.scaled_dot_product_attention(q, k, v, is_causal=past_kv is None and n > 1,
                                          enable_gqa=w["heads"] != w["kv"])
    attn = attn.transpose(1, 2).reshape(b, n, w["heads"] * w["hd"])
    x = x + allreduce(F.linear(attn, w["o"]))                   # row-parallel o_proj: partial sums
    h = w["norm2"](x)
    mlp = F.linear(F.silu(F.linear(h, w["gate"])) * F.linear(h, w["up"]), w["down"])
    return x + allreduce(mlp), (k, v)


def max_abs_diff(out, ref) -> float:
    if out.device.type == "meta":                     # meta tensors have shapes but no values
        return float("nan")
    return float((out.float().cpu() - ref.float()).abs().max())


def timed(ctx, fn, repeats: int = 10, warmup: int = 2):
    totals, comms, clock = [], [], None
    for i in range(warmup + repeats):
        clock = {"comm_s": 0.0, "allreduces": 0, "bytes": 0}
        ctx.barrier()
        t0 = time.perf_counter()
        fn(clock)
        ctx.sync()
        total = ctx.max_over_ranks(time.perf_counter() - t0)
        comm = ctx.max_over_ranks(clock["comm_s"])
        if i >= warmup:
            totals.append(total)
            comms.append(comm)
    return statistics.median(totals), statistics.median(comms), clock


def tp_layer_rows(ctx, widths: list[int], log, head_dim: int = 64, batch: int = 1, prompt: int = 64) -> list[dict]:
    rows = []
    for d in widths:
        heads = d // head_dim
        kv = max(ctx.world, heads // 2)
        if heads % ctx.world or kv % ctx.world or heads % kv:
            print(f"skipping width {d}: {heads} heads do not split over {ctx.world} ranks", file=log)
            continue
        inter = int(round(2.6875 * d / 16)) * 16
        inter -= inter % ctx.world
        layer, rotary, _ = reference_layer(d, heads, kv, inter)       # built on the CPU from one seed
        gen = torch.Generator().manual_seed(1)
        x_cpu = torch.randn(batch, prompt, d, generator=gen)
        cos_cpu, sin_cpu = rotary(x_cpu, torch.arange(prompt)[None])
        x1_cpu = torch.randn(batch, 1, d, generator=gen)
        cos1_cpu, sin1_cpu = rotary(x1_cpu, torch.tensor([[prompt]]))
        with torch.inference_mode():
            ref = layer(x_cpu, position_embeddings=(cos_cpu, sin_cpu))     # the unsharded reference, on the CPU
            ref = ref[0] if isinstance(ref, tuple) else ref
            # The sharded layer and its inputs live on the rank's device (NCCL: its GPU).
            layer = layer.to(ctx.device)
            w = shard(layer, ctx.rank, ctx.world)
            x, cos, sin, x1, cos1, sin1 = (t.to(ctx.device) for t in (x_cpu, cos_cpu, sin_cpu, x1_cpu, cos1_cpu, sin1_cpu))
            out, past = tp_forward(ctx, w, x, cos, sin)
            diff = max_abs_diff(out, ref)
            for phase, fn, tokens, context in (
                ("prefill", lambda c: tp_forward(ctx, w, x, cos, sin, clock=c), prompt, 0),
                ("decode", lambda c: tp_forward(ctx, w, x1, cos1, sin1, past_kv=past, clock=c), 1, prompt),
            ):
                total, comm, clock = timed(ctx, fn)
                rows.append({"world_size": ctx.world, "hidden_size": d, "num_attention_heads": heads,
                             "num_key_value_heads": kv, "intermediate_size": inter, "phase": phase, "batch": batch,
                             "tokens": tokens, "context_len": context, "time_s": total, "compute_s": total - comm,
                             "comm_s": comm, "allreduces": clock["allreduces"], "allreduce_bytes": clock["bytes"],
                             "max_abs_diff": diff, "reference_max_abs": float(ref.abs().max()), "backend": ctx.backend})
                if ctx.rank == 0:
                    print(f"tp layer d={d} {phase}: {total * 1e3:.3f} ms ({comm * 1e3:.3f} ms in {clock['allreduces']} "
                          f"all-reduces); max |sharded - unsharded| {diff:.2e}", file=log, flush=True)
    return rows
