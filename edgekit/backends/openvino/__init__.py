"""OpenVINO: IR files (.xml + .bin) for x86 CPUs and Intel GPUs and NPUs; fp16 weights, NNCF int8 and
int8 weight-only compression. Converted straight from PyTorch, ONNX and Keras sources."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgekit.backends.base import NON_LAYER_OPS, Backend, Converter, NativeTool, Quantizer, StepContext, StepNotes
from edgekit.backends.openvino import benchmark_app
from edgekit.backends.openvino.ir import companions
from edgekit.backends.openvino.plan import ov_plan, scheme_problems
from edgekit.sidecar import ArtifactIO
from edgekit.sources.base import Model

_STACK = ("openvino",)


def _from_torch(ctx: StepContext) -> StepNotes:
    from edgekit.backends.openvino.convert import from_torch

    return from_torch(ctx)


def _from_onnx(ctx: StepContext) -> StepNotes:
    from edgekit.backends.openvino.convert import from_onnx

    return from_onnx(ctx)


def _from_keras(ctx: StepContext) -> StepNotes:
    from edgekit.backends.openvino.convert import from_keras

    return from_keras(ctx)


def _fp16(ctx: StepContext) -> StepNotes:
    from edgekit.backends.openvino.quantize import fp16

    return fp16(ctx)


def _int8(ctx: StepContext) -> StepNotes:
    from edgekit.backends.openvino.quantize import int8

    return int8(ctx)


def _weight_only(ctx: StepContext) -> StepNotes:
    from edgekit.backends.openvino.quantize import weight_only

    return weight_only(ctx)


def _runner(path: Path, io: ArtifactIO | None, threads: int | None = None):
    from edgekit.backends.openvino.runner import OpenVINORunner

    return OpenVINORunner(path, io, threads)


def describe_io(path: Path, model: Model) -> ArtifactIO:
    """The IR's own inputs and outputs (names, element types, free dims); output roles as the source declared."""
    from edgekit.backends.openvino.runner import ir_signature

    return ArtifactIO.from_signature(ir_signature(path).with_roles(model.signature))


def _count_work(path: Path, inputs: dict[str, list[int]]) -> dict[str, Any]:
    from edgekit.backends.openvino.work import count

    return count(path, inputs)


def _layer_taps(path: Path, io: ArtifactIO | None):
    from edgekit.backends.openvino.taps import OpenVINOTaps

    return OpenVINOTaps(path)


BACKEND = Backend(
    runtime="openvino",
    versioned=("openvino", "nncf"),
    format="openvino",
    suffixes=(".xml",),
    runner=_runner,
    describe_io=describe_io,
    worker_loader=Path(__file__).with_name("worker_loader.py"),
    runtime_modules=_STACK,
    converters=(
        Converter("torch", "openvino", _from_torch, "openvino.convert_model", needs=_STACK),
        Converter("onnx", "openvino", _from_onnx, "openvino.convert_model", needs=_STACK),
        Converter("keras", "openvino", _from_keras, "openvino.convert_model", needs=("openvino", "tensorflow")),
    ),
    quantizers=(
        Quantizer("fp16", _fp16),
        Quantizer("static", _int8, keeps_float=True, float_last=(NON_LAYER_OPS,)),
        Quantizer("weight-only", _weight_only, keeps_float=True),
    ),
    native_tool=NativeTool("benchmark_app", benchmark_app.command, benchmark_app.parse, benchmark_app.extra_args),
    extra="openvino",
    plan=ov_plan,
    scheme_problems=scheme_problems,
    companions=companions,
    count_work=_count_work,
    layer_taps=_layer_taps,
)
