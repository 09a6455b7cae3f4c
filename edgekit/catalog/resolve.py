"""resolve(target, device): the one place that turns a target and a device into a quantization recipe."""

from __future__ import annotations

from dataclasses import replace

from edgekit.catalog.loader import quantizations, schemes
from edgekit.catalog.schema import Device, Recipe, RuntimeRule, Target
from edgekit.errors import UsageError


def resolve(target: Target, device: Device) -> Recipe:
    """Pick the scheme and op list for `target` on `device` from the device's runtime row."""
    rule = device.runtimes.get(target.runtime)
    if rule is not None and rule.quantizations is not None and target.quantization not in rule.quantizations:
        raise UsageError(
            f"Device profile '{device.name}' runs only {', '.join(rule.quantizations)} {target.runtime} files, "
            f"not '{target.name}' ({target.quantization}).",
            hint=f"{device.description}. Pick a target with one of those quantizations.",
        )
    supported = rule.supported_ops if rule else None
    # weights-only kinds need no activation scheme: a runtime without a row on the device uses its own (ONNX
    # Runtime GenAI's block-wise int4, ExecuTorch's 8da4w); one with a row (OpenVINO) takes its scheme
    device_scheme = quantizations()[target.quantization].device_scheme
    if device_scheme == "never" or (device_scheme == "optional" and rule is None):
        recipe = Recipe(target.name, device.name, target.quantization, None, None, (), None, supported_ops=supported)
        return _with_stack(recipe, rule, device)
    if rule is None:
        raise UsageError(
            f"Device profile '{device.name}' has no rule for the {target.runtime} runtime, "
            f"so target '{target.name}' cannot be quantized for it.",
            hint=f"It has rules for: {', '.join(device.runtimes)}.",
        )
    ops = rule.dynamic_ops if target.quantization == "dynamic" else rule.int8_ops
    recipe = Recipe(
        target.name,
        device.name,
        target.quantization,
        rule.scheme,
        schemes()[rule.scheme],
        ops,
        rule.engine,
        rule.quantize_activation_products,
        supported,
        dynamic_activation_ops=rule.dynamic_activation_ops,
    )
    return _with_stack(recipe, rule, device)


def _with_stack(recipe: Recipe, rule: RuntimeRule | None, device: Device) -> Recipe:
    """The runtime as the device ships it (version, newest opset, which of its devices runs the file, in what
    float precision) and its GPU, for runtimes that build for one."""
    return replace(
        recipe,
        engine=rule.engine if rule else None,
        inference_precision=rule.inference_precision if rule else None,
        runtime_version=rule.version if rule else None,
        max_opset=rule.max_opset if rule else None,
        gpu=device.gpu,
    )
