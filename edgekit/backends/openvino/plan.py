"""The OpenVINO recipe: which OpenVINO device runs the IR and in what float precision, and how NNCF
quantizes it (preset, overflow fix, weight-only mode), from the device profile's openvino row."""

from __future__ import annotations

from dataclasses import dataclass

from edgekit.catalog.schema import Recipe, RuntimeRule, Scheme

DEVICES = ("CPU", "GPU", "NPU")  # OpenVINO's device names (GPU.0, NPU.1...: one of several)


@dataclass(frozen=True)
class OvPlan:
    target: str
    device: str  # the edgekit device profile
    device_name: str  # the OpenVINO device the runner compiles for
    inference_precision: str | None  # f32 keeps float layers fp32 (the CPU picks bf16 itself where it has it)
    quantization: str
    preset: str  # nncf.QuantizationPreset: PERFORMANCE (symmetric activations) or MIXED (asymmetric)
    overflow_fix: bool  # CPUs without VNNI saturate a u8*s8 product: NNCF halves the first layers' weight range
    weights_mode: str  # nncf.CompressWeightsMode for weight-only: INT8_SYM or INT8_ASYM


def ov_plan(recipe: Recipe) -> OvPlan:
    scheme = recipe.scheme
    symmetric_activations = scheme is None or scheme.activations.symmetric
    return OvPlan(
        recipe.target,
        recipe.device,
        recipe.engine or "CPU",
        recipe.inference_precision,
        recipe.quantization,
        "PERFORMANCE" if symmetric_activations else "MIXED",
        bool(scheme and scheme.reduce_range),
        "INT8_SYM" if scheme is None or scheme.weights.symmetric else "INT8_ASYM",
    )


def scheme_problems(scheme: Scheme, rule: RuntimeRule) -> list[str]:
    """NNCF writes int8 weights symmetric per output channel; the device must name an OpenVINO device."""
    problems = []
    if rule.engine is not None and rule.engine.split(".")[0] not in DEVICES:
        problems.append(f"unknown OpenVINO device '{rule.engine}' (OpenVINO has {', '.join(DEVICES)})")
    w = scheme.weights
    if w.dtype != "int8" or not w.per_channel:
        problems.append("NNCF quantizes weights to int8 per output channel; the scheme asks otherwise")
    if rule.inference_precision not in (None, "f32", "bf16", "f16"):
        problems.append(f"unknown inference precision '{rule.inference_precision}' (f32, bf16, f16)")
    return problems
