"""Core ML: .mlpackage folders (ML programs) for iPhones and Macs, converted from PyTorch with coremltools on any
OS, in fp32 or fp16 or with compressed weights (int8, n-bit palettes); predicting needs Core ML, so macOS."""

from __future__ import annotations

from pathlib import Path

from edgekit.backends.base import Backend, Converter, Quantizer, StepContext, StepNotes
from edgekit.backends.coreml.options import CoreMLOptions
from edgekit.backends.coreml.stack import HOW_TO_RUN, cannot_run_here
from edgekit.sidecar import ArtifactIO
from edgekit.sources.base import Model


def _from_torch(ctx: StepContext) -> StepNotes:
    from edgekit.backends.coreml.convert import convert

    return convert(ctx)


def _int8(ctx: StepContext) -> StepNotes:
    from edgekit.backends.coreml.compress import int8_weights

    return int8_weights(ctx)


def _palettized(ctx: StepContext) -> StepNotes:
    from edgekit.backends.coreml.compress import palettized_weights

    return palettized_weights(ctx)


def _runner(path: Path, io: ArtifactIO | None, threads: int | None = None):
    from edgekit.backends.coreml.runner import open_coreml

    return open_coreml(path, io, threads)


def describe_io(path: Path, model: Model) -> ArtifactIO:
    """The package's inputs and outputs as its spec declares them, with the source's names for flexible dims."""
    from edgekit.backends.coreml.program import load_spec, signature

    return ArtifactIO.from_signature(signature(load_spec(path), model.signature))


def _load_hint(message: str) -> str | None:
    """A benchmark worker's refusal off macOS, answered with how to run the package."""
    return HOW_TO_RUN.replace("FILE", "PACKAGE.mlpackage") if "macOS and iOS only" in message else None


BACKEND = Backend(
    runtime="coreml",
    format="coreml",
    suffixes=(".mlpackage",),
    folders=True,
    app_platforms=("ios",),
    versioned=("coremltools",),
    extra="coreml",
    runner=_runner,
    describe_io=describe_io,
    worker_loader=Path(__file__).with_name("worker_loader.py"),
    runtime_modules=("coremltools",),
    converters=(
        Converter(
            "torch",
            "coreml",
            _from_torch,
            "coremltools.convert (mlprogram)",
            needs=("coremltools", "torch"),
            quantizes=("fp16",),
        ),
    ),
    quantizers=(Quantizer("weight-only", _int8), Quantizer("palettized", _palettized)),
    options=CoreMLOptions,
    load_hint=_load_hint,
    cannot_run_here=cannot_run_here,
)
