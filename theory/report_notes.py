"""Lines the table output adds for what is beyond the Llama shape: MoE, sliding windows as run, assumptions."""


def model_notes(out: dict) -> list[str]:
    if out.get("memory_kind") == "cpu":
        lines = [f"memory     usable {out['usable_memory_bytes'] / 1e9:.3f} GB ({out['usable_memory_source']}, less "
                 f"reserve); parameters {out['params']:,}"]
    else:
        lines = [f"memory     usable {out['usable_memory_bytes'] / 1e9:.3f} GB per device "
                 f"({out.get('usable_memory_source', 'driver total')}, less reserve); marketing "
                 f"{out['memory_capacity_bytes'] / 1e9:.0f} GB; parameters {out['params']:,}"]
    moe = out.get("moe")
    if moe:
        lines.append(f"experts    {moe['experts_touched_per_layer']:.2f} of {moe['num_experts']} experts read per MoE layer"
                     f" for {moe['tokens_in_pass']} token(s), {moe['experts_per_token']} per token"
                     f" ({moe['assumption']}); active parameters per token {moe['params_active_per_token']:,}")
    if out["kv_cache_bytes_as_run"] != out["kv_cache_bytes"]:
        lines.append(f"KV as run  {out['kv_cache_bytes_as_run'] / 1e6:.3f} MB: transformers' dynamic cache keeps"
                     " window−1 tokens per sliding layer between passes")
    lines += [f"assumed    {a}" for a in out.get("assumptions", [])]
    lines += [f"warning    {a}" for a in out.get("warnings", [])]
    return lines
