"""The ExecuTorch recipe: what the XNNPACK quantizer is configured with, from the device's scheme."""

from __future__ import annotations

from dataclasses import dataclass

from edgekit.catalog.schema import Recipe, RuntimeRule, Scheme


@dataclass(frozen=True)
class ExecuTorchPlan:
    quantize: bool  # PT2E static int8 with XNNPACKQuantizer
    per_channel_weights: bool
    device: str
    dynamic_linear: bool = False  # linear layers take int8 activations with ranges measured at run time


def scheme_problems(scheme: Scheme, rule: RuntimeRule) -> list[str]:
    """XNNPACK's quantizer makes asymmetric int8 activations and symmetric int8 weights."""
    problems = []
    if scheme.activations.dtype != "int8" or scheme.activations.symmetric:
        problems.append("XNNPACK quantizes activations to asymmetric int8")
    if scheme.weights.dtype != "int8" or not scheme.weights.symmetric:
        problems.append("XNNPACK quantizes weights to symmetric int8")
    if scheme.reduce_range:
        problems.append("XNNPACK's quantizer has no reduce_range")
    return problems


def executorch_plan(recipe: Recipe) -> ExecuTorchPlan:
    per_channel = bool(recipe.scheme and recipe.scheme.weights.per_channel)
    dynamic = "linear" in recipe.dynamic_activation_ops
    return ExecuTorchPlan(recipe.quantization == "static", per_channel, recipe.device, dynamic)
