"""resolve(target, device): the one place that turns a target and a device into a quantization recipe."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from edgekit.catalog.loader import schemes
from edgekit.catalog.schema import Device, Scheme, Target
from edgekit.errors import UsageError


@dataclass(frozen=True)
class Recipe:
    """What a quantizer needs: the target, the device, the named scheme and the ops to quantize."""

    target: str
    device: str
    quantization: str
    scheme_name: str | None
    scheme: Scheme | None
    int8_ops: tuple[str, ...]
    engine: str | None
    quantize_activation_products: bool = False
    supported_ops: tuple[str, ...] | None = None  # the device runs only these ops (None: any)
    allow_float_fallback: bool = False  # the user accepts float ops in an integer target (listed in the sidecar)

    def to_json(self) -> dict:
        data = asdict(self)
        data["scheme"] = self.scheme.model_dump() if self.scheme else None
        return data


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
    if target.quantization in ("none", "fp16"):
        return Recipe(target.name, device.name, target.quantization, None, None, (), None, supported_ops=supported)
    if rule is None:
        raise UsageError(
            f"Device profile '{device.name}' has no rule for the {target.runtime} runtime, "
            f"so target '{target.name}' cannot be quantized for it.",
            hint=f"It has rules for: {', '.join(device.runtimes)}.",
        )
    ops = rule.dynamic_ops if target.quantization == "dynamic" else rule.int8_ops
    return Recipe(target.name, device.name, target.quantization, rule.scheme, schemes()[rule.scheme], ops, rule.engine,
                  rule.quantize_activation_products, supported)
