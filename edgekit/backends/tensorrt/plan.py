"""The TensorRT recipe: builder flags for the target on the device's GPU, the parser's opset and op support,
and (int8) the QDQ settings handed to ONNX Runtime's quantizer."""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

from edgekit.backends.onnxruntime.plan import OrtPlan, ort_plan
from edgekit.catalog.schema import Gpu, Recipe, RuntimeRule, Scheme
from edgekit.errors import UsageError

DEFAULT_DEVICE = "nvidia-gpu"  # the generic TensorRT profile, when the machine exporting has none
DEFAULT_VERSION = "10"


@dataclass(frozen=True)
class ParserSupport:
    """What one TensorRT release's ONNX parser reads."""

    version: str
    opsets: tuple[int, int]
    unsupported: frozenset[str]


@functools.cache
def _parser_table() -> dict[str, ParserSupport]:
    data = yaml.safe_load(Path(__file__).with_name("parser_ops.yaml").read_text())
    return {
        str(k): ParserSupport(str(k), (v["opsets"][0], v["opsets"][1]), frozenset(v["unsupported"]))
        for k, v in data.items()
    }


def parser_support(version: str | None) -> ParserSupport:
    """The table entry for a TensorRT version: the longest key that prefixes it ("10.3" -> "10")."""
    table = _parser_table()
    version = version or DEFAULT_VERSION
    keys = sorted((k for k in table if version == k or version.startswith(k + ".")), key=len, reverse=True)
    return table[keys[0]] if keys else table[DEFAULT_VERSION]


@dataclass(frozen=True)
class TrtPlan:
    """Everything the TensorRT steps need: what the builder is told, and how the ONNX must be written."""

    target: str
    device: str
    precision: str
    builder_flags: tuple[str, ...]  # tensorrt.BuilderFlag names (FP16, INT8); fp32 needs none
    parser: ParserSupport
    max_opset: int
    gpu: Gpu | None
    ort: OrtPlan | None  # int8: ONNX Runtime's QDQ quantizer, set up the way TensorRT reads Q/DQ


# ONNX Runtime quantizer options for TensorRT's explicit quantization: Q/DQ only on the inputs of the
# weighted ops (TensorRT fuses DQ -> Conv/MatMul; a Q/DQ on every output would only add reformat layers),
# float bias (TensorRT folds the scales into the bias itself).
_TRT_QDQ_OPTIONS = (("QuantizeBias", False),)


def trt_plan(recipe: Recipe) -> TrtPlan:
    """Refuse what the device's GPU cannot build (fp16 or int8 without the units); set the builder flags."""
    gpu = recipe.gpu
    precision = {"none": "fp32", "fp16": "fp16", "static": "int8"}[recipe.quantization]
    for unit in ("fp16", "int8"):
        if precision == unit and gpu is not None and not getattr(gpu, unit):
            raise UsageError(
                f"{recipe.device}'s GPU ({gpu.name}, sm_{gpu.compute_capability.replace('.', '')}) has no fast "
                f"{unit} path; TensorRT would build {recipe.target} in fp32 or refuse it.",
                hint="Pick tensorrt-fp32 or another device profile (edgekit devices).",
            )
    flags: tuple[str, ...] = ()
    if precision == "fp16":
        flags = ("FP16",)
    elif precision == "int8":
        # explicit Q/DQ runs the quantized layers in int8; FP16 lets the layers between them run in half
        # precision too, as NVIDIA's guidance for QDQ networks does
        flags = ("INT8", "FP16") if gpu is None or gpu.fp16 else ("INT8",)
    ort = None
    if precision == "int8":
        base = ort_plan(recipe)
        assert base is not None
        ort = replace(
            base,
            extra_options=(*_TRT_QDQ_OPTIONS, ("OpTypesToExcludeOutputQuantization", list(recipe.int8_ops))),
            kept_weights_int8=False,
            smooth_activations=False,  # TensorRT calibrates its own way; not measured with smoothing
        )
    parser = parser_support(recipe.runtime_version)
    return TrtPlan(
        recipe.target,
        recipe.device,
        precision,
        flags,
        parser,
        min(parser.opsets[1], recipe.max_opset or parser.opsets[1]),
        gpu,
        ort,
    )


def scheme_problems(scheme: Scheme, rule: RuntimeRule) -> list[str]:
    """TensorRT reads int8 Q/DQ with zero points of 0 only: symmetric int8 activations and weights."""
    problems = []
    for what, q in (("activations", scheme.activations), ("weights", scheme.weights)):
        if q.dtype != "int8" or not q.symmetric:
            problems.append(
                f"TensorRT needs symmetric int8 {what} (zero point 0); the scheme asks for "
                f"{'symmetric' if q.symmetric else 'asymmetric'} {q.dtype}"
            )
    if scheme.reduce_range:
        problems.append("TensorRT uses the full int8 range; the scheme asks for reduce_range")
    return problems
