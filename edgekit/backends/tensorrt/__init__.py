"""TensorRT: a TensorRT-ready ONNX on any machine (stage 1), the serialized engine where TensorRT runs (stage 2).

Stage 1 is an export like any other (converter onnx -> tensorrt, then fp16 or int8 QDQ) whose file runs in
ONNX Runtime, so parity and evaluation run here; stage 2 (engine.py) builds the .plan from it on a GPU.
"""

from __future__ import annotations

from pathlib import Path

from edgekit.backends.base import Backend, Converter, NativeTool, Quantizer, StepContext, StepNotes
from edgekit.backends.onnxruntime import describe_io
from edgekit.backends.tensorrt import trtexec
from edgekit.backends.tensorrt.options import TensorRTOptions
from edgekit.backends.tensorrt.plan import DEFAULT_DEVICE, scheme_problems, trt_plan
from edgekit.sidecar import ArtifactIO


def _prepare(ctx: StepContext) -> StepNotes:
    from edgekit.backends.tensorrt.prepare import prepare

    return prepare(ctx)


def _fp16(ctx: StepContext) -> StepNotes:
    from edgekit.backends.tensorrt.quantize import fp16

    return fp16(ctx)


def _int8(ctx: StepContext) -> StepNotes:
    from edgekit.backends.tensorrt.quantize import int8

    return int8(ctx)


def _runner(path: Path, io: ArtifactIO | None, threads: int | None = None):
    from edgekit.backends.tensorrt.runner import TensorRTRunner

    return TensorRTRunner(path, io, threads)


def _build(onnx_file: Path, options, progress) -> Path:
    from edgekit.backends.tensorrt.engine import build_engine, engine_options

    return build_engine(onnx_file, engine_options(options), progress)


def _locate(transport) -> str:
    from edgekit.backends.tensorrt.engine import find_trtexec

    return find_trtexec(transport, None)


def _shapes(engine: Path) -> list[str]:
    """trtexec runs an engine with free dims at the profile's opt shape, read from the engine's sidecar."""
    from edgekit.backends.tensorrt.profiles import Profile, shapes_argument
    from edgekit.sidecar import read_sidecar

    sidecar = read_sidecar(engine)
    profiles = [
        Profile.from_json(n, p) for n, p in ((sidecar.engine or {}).get("profiles", {}) if sidecar else {}).items()
    ]
    return [f"--shapes={shapes_argument(profiles, 'opt')}"] if profiles else []


def _layer_taps(path: Path, io: ArtifactIO | None):
    from edgekit.backends.tensorrt.taps import TensorRTTaps

    return TensorRTTaps(path)


BACKEND = Backend(
    runtime="tensorrt",
    format="tensorrt",
    suffixes=(".plan", ".engine"),
    runner=_runner,
    describe_io=describe_io,  # stage 1 writes ONNX
    worker_loader=Path(__file__).with_name("worker_loader.py"),
    runtime_modules=("tensorrt", "cuda"),
    converters=(
        Converter(
            "onnx",
            "tensorrt",
            _prepare,
            "polygraphy (fold constants, infer shapes)",
            needs=("polygraphy", "onnx_graphsurgeon"),
        ),
    ),
    quantizers=(Quantizer("fp16", _fp16), Quantizer("static", _int8, keeps_float=True)),
    native_tool=NativeTool("trtexec", trtexec.benchmark_command, trtexec.parse_performance, _shapes, _locate),
    extra="tensorrt",
    plan=trt_plan,
    scheme_problems=scheme_problems,
    default_device=DEFAULT_DEVICE,
    engine=_build,
    options=TensorRTOptions,
    layer_taps=_layer_taps,
)
