"""TFLite / LiteRT: .tflite files for phones and boards; quantization happens inside the TFLite converter."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from edgekit.backends.base import Backend, Converter, NativeTool, StepContext, StepNotes
from edgekit.backends.litert import native
from edgekit.backends.litert.plan import LOOKUPS, OTHER_OPS, litert_plan, scheme_problems
from edgekit.backends.options import ADAROUND_HELP, BackendOptions
from edgekit.channel_groups import OPTION_HELP
from edgekit.sidecar import ArtifactIO
from edgekit.sources.base import Model

_QUANTIZATIONS = ("fp16", "dynamic", "full-integer", "int16x8")


class LiteRTOptions(BackendOptions):
    smoothquant: bool = Field(
        False,
        description="tflite-int8 through ONNX: move activation outliers into the weights before calibrating "
        "(SmoothQuant, its strength chosen per layer group); off by default: it won nothing on MiniLM or ViT, "
        "whose int8 loss is in the FULLY_CONNECTED outputs",
        # not in search's default grid (no measured gain); a space file can add it
        json_schema_extra={"quantizations": ["full-integer"]},
    )
    channel_groups: bool = Field(
        True,
        description=OPTION_HELP,
        json_schema_extra={"quantizations": ["full-integer"]},
    )
    adaround: bool = Field(
        False,
        description=ADAROUND_HELP,
        json_schema_extra={"quantizations": ["full-integer"]},
    )
    float_io: bool = Field(
        False,
        description="tflite-int8: float32 input and output tensors (the file quantizes its inputs; the ops computing "
        "its outputs stay float), int8 inside; for an app that feeds floats, or an output whose range int8 steps "
        "cannot resolve (a classifier's wide logits). Off: full integer, int8 I/O",
        json_schema_extra={"quantizations": ["full-integer"]},
    )


def _gate_hint(artifact: Path) -> str | None:
    """A full-integer file's int8 outputs: steps no layer kept float can make finer."""
    from edgekit.backends.litert.tflite_file import read_tflite

    stepped = [
        f"{t.name} in steps of {t.scale:.3g} over [{(-128 - t.zero_point) * t.scale:.4g}, "
        f"{(127 - t.zero_point) * t.scale:.4g}]"
        for t in read_tflite(artifact).outputs
        if t.dtype == "INT8" and t.scale and t.zero_point is not None
    ]
    if not stepped:
        return None
    return (
        f"What no layer kept float undoes is the file's int8 output ({'; '.join(stepped)}): --float-io keeps the "
        "input and output float32, int8 inside."
    )


def _from_keras(ctx: StepContext) -> StepNotes:
    from edgekit.backends.litert.convert import from_keras

    return from_keras(ctx)


def _from_torch(ctx: StepContext) -> StepNotes:
    from edgekit.backends.litert.from_torch import convert

    return convert(ctx)


def _from_onnx(ctx: StepContext) -> StepNotes:
    from edgekit.backends.litert.convert import from_onnx

    return from_onnx(ctx)


def _runner(path: Path, io: ArtifactIO | None, threads: int | None = None):
    from edgekit.backends.litert.runner import LiteRTRunner

    return LiteRTRunner(path, io, threads)


def _describe_io(path: Path, model: Model) -> ArtifactIO:
    from edgekit.backends.litert.runner import tflite_io

    return tflite_io(path, model)


def _count_work(path: Path, inputs: dict[str, list[int]]) -> dict[str, Any]:
    from edgekit.backends.litert.work import count

    return count(path, inputs)


def _layer_taps(path: Path, io: ArtifactIO | None):
    from edgekit.backends.litert.taps import TFLiteTaps

    return TFLiteTaps(path, io)


BACKEND = Backend(
    runtime="litert",
    app_platforms=("android", "ios"),
    versioned=("onnx2tf", "litert-torch", "ai-edge-litert"),
    format="tflite",
    suffixes=(".tflite",),
    runner=_runner,
    describe_io=_describe_io,
    worker_loader=Path(__file__).with_name("worker_loader.py"),
    runtime_modules=("ai_edge_litert",),
    # PyTorch sources have two routes: litert-torch's lowering (tried first for float and dynamic-range targets:
    # it guesses no tensor layouts; last for full-integer) and torch -> onnx -> tflite through the onnx edge (every
    # target); the exporter tries the next route when one fails or its file fails its gate
    converters=(
        Converter(
            "torch",
            "tflite",
            _from_torch,
            "litert-torch",
            needs=("litert_torch", "ai_edge_litert"),
            quantizes=("dynamic", "full-integer", "int16x8"),
            static_shapes=True,
            keeps_float=("full-integer", "int16x8"),
            float_last=(LOOKUPS,),
            # its int8 and int16x8 files keep the non-linear ops float; the ONNX route's do not (where it converts:
            # TFLite's 16x8 calibrator refuses integer inputs), unless its fallback keeps them float too: then this
            # route's file, whose layers are whole, is tried and preferred (exporter._whole_layers_instead)
            partly_float=("full-integer", "int16x8"),
        ),
        Converter(
            "keras",
            "tflite",
            _from_keras,
            "tf.lite.TFLiteConverter",
            needs=("tensorflow", "ai_edge_litert"),
            quantizes=_QUANTIZATIONS,
            keeps_float=("full-integer",),
            float_first=(OTHER_OPS,),
            float_last=(LOOKUPS,),
        ),
        Converter(
            "onnx",
            "tflite",
            _from_onnx,
            "onnx2tf + tf.lite.TFLiteConverter",
            needs=("onnx2tf", "tensorflow", "ai_edge_litert"),
            quantizes=_QUANTIZATIONS,
            static_shapes=True,
            keeps_float=("full-integer",),
            float_first=(OTHER_OPS,),
            float_last=(LOOKUPS,),
        ),
    ),
    native_tool=NativeTool("benchmark_model", native.command, native.parse_tflite_benchmark),
    extra="tflite",
    plan=litert_plan,
    options=LiteRTOptions,
    scheme_problems=scheme_problems,
    count_work=_count_work,
    gate_hint=_gate_hint,
    layer_taps=_layer_taps,
)
