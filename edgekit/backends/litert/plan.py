"""The LiteRT recipe: the catalog's scheme checked against the TFLite int8 spec, turned into converter settings."""

from __future__ import annotations

from dataclasses import dataclass

from edgekit.catalog.schema import Recipe, RuntimeRule, Scheme


@dataclass(frozen=True)
class ConverterSettings:
    """TFLiteConverter options."""

    optimize: bool = False
    float16: bool = False
    calibrate: bool = False
    ops: str = "TFLITE_BUILTINS"  # tf.lite.OpsSet member the kernels must come from
    integer_io: bool = False  # int8 input and output tensors (full integer)


FLOAT = ConverterSettings()
# the per-layer fallback's first group on TFLite: every op but the linear/conv ones (LayerNorm pieces,
# Softmax, GELU, the attention-mask arithmetic), kept float around int8 FULLY_CONNECTED/CONV
OTHER_OPS = "(non-linear ops)"
# its last group: the embedding lookups (GATHER from a constant table), int8 even with the non-linear ops float
LOOKUPS = "(embedding lookups)"
# what tflite-int8 with --float-io keeps float: the ops computing the model's outputs (int8 ops would requantize them)
OUTPUT_OPS = "(output ops)"
_OPS = {
    "full-integer": "TFLITE_BUILTINS_INT8",
    "int16x8": "EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8",
}


@dataclass(frozen=True)
class LiteRTPlan:
    quantization: str
    device: str
    settings: ConverterSettings
    supported_ops: tuple[str, ...] | None  # the device runs only these builtin ops (None: all)
    allow_float_fallback: bool


def scheme_problems(scheme: Scheme, rule: RuntimeRule) -> list[str]:
    """The TFLite converter writes one int8 layout (the TFLite int8 spec); a scheme asking for another
    would be silently ignored, so it is refused."""
    problems = []
    if scheme.activations.dtype != "int8" or scheme.activations.symmetric:
        problems.append(
            "TFLite quantizes activations to asymmetric int8; the scheme asks for "
            f"{'symmetric ' if scheme.activations.symmetric else ''}{scheme.activations.dtype}"
        )
    w = scheme.weights
    if w.dtype != "int8" or not w.symmetric or not w.per_channel:
        problems.append(
            "TFLite quantizes weights to symmetric per-channel int8; the scheme asks for "
            f"{w.dtype} symmetric={w.symmetric} per_channel={w.per_channel}"
        )
    if scheme.reduce_range:
        problems.append("the TFLite converter has no reduce_range")
    return problems


def litert_plan(recipe: Recipe) -> LiteRTPlan:
    """Converter settings for the target's quantization (the scheme was checked when the devices loaded)."""
    q = recipe.quantization
    settings = ConverterSettings(
        optimize=q != "none",
        float16=q == "fp16",
        calibrate=q in _OPS,
        ops=_OPS.get(q, "TFLITE_BUILTINS"),
        integer_io=q == "full-integer",
    )
    return LiteRTPlan(q, recipe.device, settings, recipe.supported_ops, recipe.allow_float_fallback)
