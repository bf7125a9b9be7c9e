"""Mixture-of-experts arithmetic that is not a per-op count: experts a pass touches, active parameters."""
from theory.model import ModelSpec

ROUTING_ASSUMPTION = "uniform routing: each token picks k of E experts independently and uniformly"


def expected_experts_touched(num_experts: int, experts_per_token: int, tokens: int) -> float:
    """Experts of one layer that at least one of `tokens` tokens routes to: E·(1 − (1 − k/E)^tokens) under
    uniform, independent routing (said so in the output). Batch 1 decode touches k; a large batch all E."""
    if not num_experts:
        return 0.0
    if tokens == 1:
        return float(experts_per_token)
    return num_experts * (1 - (1 - experts_per_token / num_experts) ** tokens)


def moe_summary(model: ModelSpec, tokens: int) -> dict | None:
    """The MoE facts a prediction reports (None for a dense model)."""
    if not model.num_moe_layers:
        return None
    return {"num_experts": model.num_experts, "experts_per_token": model.experts_per_token,
            "moe_layers": model.num_moe_layers, "tokens_in_pass": tokens,
            "experts_touched_per_layer": expected_experts_touched(model.num_experts, model.experts_per_token, tokens),
            "params_total": model.num_params, "params_active_per_token": model.active_params(),
            "assumption": ROUTING_ASSUMPTION}
