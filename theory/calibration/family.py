"""Which models a kernel calibration can predict: the ones `bench kernels` plans kernels for (bench/kernels/shapes.py),
Llama-structured layers. Both sides ask this one function, so theory never predicts from Llama kernels a model whose
own kernels bench would refuse to time (a bias add, a GeLU, a scaled embedding, experts are not in a calibration)."""
from theory.model import ModelSpec

PLANNED_TYPES = ("llama", "mistral")


def unplanned_reason(spec: ModelSpec) -> str | None:
    """Why the kernel plan does not cover this model (None when it does): the first difference from Llama's layers."""
    checks = [
        (spec.model_type not in PLANNED_TYPES, f"model_type {spec.model_type}"),
        (spec.model_type.startswith("gemma"), "a scaled embedding"),
        (spec.num_experts > 0, f"{spec.num_experts} experts"),
        (spec.mlp != "gated", "a two-matrix MLP"),
        (spec.activation != "silu", f"a {spec.activation} activation"),
        (spec.qkv_bias or spec.o_bias or spec.mlp_bias or spec.lm_head_bias, "biases"),
        (spec.positions != "rotary", f"{spec.positions} positions"),
        (spec.qk_norm, "q/k norms"),
        (spec.norms_per_layer != 2 or spec.norm != "rmsnorm", f"{spec.norms_per_layer} {spec.norm} norms per layer"),
        (spec.parallel_residual, "a parallel residual"),
    ]
    found = [what for bad, what in checks if bad]
    return None if not found else ", ".join(found)


def refusal(spec: ModelSpec) -> str | None:
    """The one line theory and bench print for a model a calibration cannot predict."""
    why = unplanned_reason(spec)
    if why is None:
        return None
    return (f"{spec.name} is not Llama-structured ({why}); kernel calibrations (`python -m bench kernels`) plan Llama-structured layers only "
            "(rotary, gated SiLU MLP, RMSNorm, no biases or experts), so neither bench kernels nor theory predicts it "
            "from one; predict it with a hardware preset or ceilings file instead")
