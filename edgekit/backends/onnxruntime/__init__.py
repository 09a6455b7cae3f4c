"""ONNX Runtime: .onnx files for CPUs and embedded Linux; fp16, dynamic int8 and static QDQ int8."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from edgekit.backends.base import NON_LAYER_OPS, Backend, Converter, NativeTool, Quantizer, StepContext, StepNotes
from edgekit.backends.onnxruntime import native
from edgekit.backends.onnxruntime.plan import ort_plan
from edgekit.backends.options import ADAROUND_HELP, BackendOptions
from edgekit.sidecar import ArtifactIO
from edgekit.sources.base import Model


class OnnxRuntimeOptions(BackendOptions):
    fuse: bool = Field(
        True,
        description="fuse a transformer encoder's graph (Attention, SkipLayerNormalization; for static int8 "
        "MultiHeadAttention, the projections outside it quantized, then written as QAttention)",
        # `edgekit search` tries both where attention fusion decides the speed (static int8 keeps it on: its
        # projections are quantized either way, and a second calibration per trial would double the grid)
        json_schema_extra={"search": [True, False], "quantizations": ["none", "fp16", "dynamic"]},
    )
    unfuse_layernorm: bool = Field(
        True,
        description="write the fused SkipLayerNormalization back as Add + LayerNormalization, which ONNX Runtime's "
        "CPU kernels run faster (float32 and int8 files; fp16 keeps the fused node)",
    )
    smooth: bool = Field(
        True,
        description="static int8: move activation outliers into the weights first (SmoothQuant, its strength "
        "chosen per layer group)",
        json_schema_extra={"search": [True, False], "quantizations": ["static"]},
    )
    bias_correction: bool = Field(
        False,
        description="static int8: shift each Conv/Gemm bias by the mean error its int8 weights add on the "
        "calibration data (depthwise convolutions round coarsest)",
        json_schema_extra={"quantizations": ["static"]},
    )
    adaround: bool = Field(
        False,
        description=ADAROUND_HELP,
        json_schema_extra={"quantizations": ["static"]},
    )
    calibration: Literal["minmax", "percentile", "mse"] = Field(
        "minmax",
        description="static int8: how activation ranges are set from the calibration data: minmax (every value "
        "fits), percentile (the 99.999th: rare outliers clip) or mse (per tensor, the clipping with the least "
        "squared rounding plus clipping error)",
        # not in search's default grid (each value is a full calibration); a space file can add it. Not entropy:
        # quantize_static leaves its histogram at 128 bins for 128 levels, one candidate (the minmax file's bytes)
        json_schema_extra={"quantizations": ["static"]},
    )


def _from_torch(ctx: StepContext) -> StepNotes:
    from edgekit.backends.onnxruntime.from_torch import convert

    return convert(ctx)


def _from_keras(ctx: StepContext) -> StepNotes:
    from edgekit.backends.onnxruntime.from_keras import convert

    return convert(ctx)


def _fp16(ctx: StepContext) -> StepNotes:
    from edgekit.backends.onnxruntime.quantize import to_fp16

    return to_fp16(ctx)


def _dynamic(ctx: StepContext) -> StepNotes:
    from edgekit.backends.onnxruntime.quantize import dynamic_int8

    return dynamic_int8(ctx)


def _static(ctx: StepContext) -> StepNotes:
    from edgekit.backends.onnxruntime.quantize import static_int8

    return static_int8(ctx)


def _fuse(ctx: StepContext) -> StepNotes:
    from edgekit.backends.onnxruntime.fuse import optimize_step

    return optimize_step(ctx)


def _runner(path: Path, io: ArtifactIO | None, threads: int | None = None):
    from edgekit.backends.onnxruntime.runner import OnnxRuntimeRunner

    return OnnxRuntimeRunner(path, io, threads)


def describe_io(path: Path, model: Model) -> ArtifactIO:
    """The file's own graph inputs and outputs; output roles as the source declared them."""
    import onnx

    from edgekit.sources.onnx_source import onnx_signature

    return ArtifactIO.from_signature(
        onnx_signature(onnx.load(str(path), load_external_data=False)).with_roles(model.signature)
    )


def _count_work(path: Path, inputs: dict[str, list[int]]) -> dict[str, Any]:
    from edgekit.backends.onnxruntime.work import count

    return count(path, inputs)


def _layer_taps(path: Path, io: ArtifactIO | None):
    from edgekit.backends.onnxruntime.taps import OnnxTaps

    return OnnxTaps(path)


BACKEND = Backend(
    runtime="onnxruntime",
    app_platforms=("android", "ios"),
    versioned=("onnxruntime",),
    options=OnnxRuntimeOptions,
    format="onnx",
    suffixes=(".onnx",),
    runner=_runner,
    describe_io=describe_io,
    worker_loader=Path(__file__).with_name("worker_loader.py"),
    runtime_modules=("onnxruntime",),
    converters=(
        Converter("torch", "onnx", _from_torch, "torch.onnx", needs=("torch", "onnxscript")),
        Converter("keras", "onnx", _from_keras, "tf2onnx", needs=("tensorflow", "tf2onnx")),
    ),
    quantizers=(
        Quantizer("fp16", _fp16),
        Quantizer("dynamic", _dynamic, keeps_float=True, float_last=(NON_LAYER_OPS,)),
        Quantizer("static", _static, keeps_float=True, float_last=(NON_LAYER_OPS,)),
    ),
    native_tool=NativeTool("onnxruntime_perf_test", native.command, native.parse_ort_perf_test),
    plan=ort_plan,
    optimize=_fuse,
    count_work=_count_work,
    layer_taps=_layer_taps,
)
