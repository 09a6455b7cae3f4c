"""The PyTorch Mobile recipe: the quantized engine and weight granularity the device's scheme names."""

from __future__ import annotations

from dataclasses import dataclass

from edgekit.catalog.schema import Recipe, RuntimeRule, Scheme

ENGINES = ("qnnpack", "x86", "fbgemm", "onednn")


@dataclass(frozen=True)
class TorchLitePlan:
    quantize: bool  # int8: static (FX, calibrated) where possible, else dynamic; the sidecar says which
    engine: str
    per_channel_weights: bool
    device: str


def scheme_problems(scheme: Scheme, rule: RuntimeRule) -> list[str]:
    """torch's quantized kernels take uint8 affine activations and int8 symmetric weights, on a named engine."""
    problems = []
    if scheme.activations.dtype != "uint8" or scheme.activations.symmetric:
        problems.append(
            f"torch quantized kernels take asymmetric uint8 activations, not "
            f"{'symmetric ' if scheme.activations.symmetric else ''}{scheme.activations.dtype}"
        )
    if scheme.weights.dtype != "int8" or not scheme.weights.symmetric:
        problems.append("torch quantized kernels take symmetric int8 weights")
    if rule.engine is not None and rule.engine not in ENGINES:
        problems.append(f"unknown quantized engine '{rule.engine}' (torch has {', '.join(ENGINES)})")
    return problems


def torch_lite_plan(recipe: Recipe) -> TorchLitePlan:
    per_channel = recipe.scheme.weights.per_channel if recipe.scheme else True
    return TorchLitePlan(recipe.quantization != "none", recipe.engine or "x86", per_channel, recipe.device)
