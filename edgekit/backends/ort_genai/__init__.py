"""ONNX Runtime GenAI: causal language models as generation folders (decoder ONNX with its key/value cache,
genai_config.json, tokenizer), built from a Hugging Face folder by ONNX Runtime GenAI's model builder in fp32 or
with block-wise int4 weights (MatMulNBits), run with onnxruntime_genai."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgekit.backends.base import Backend, Converter, StepContext, StepNotes
from edgekit.backends.ort_genai.options import GenAIOptions
from edgekit.sidecar import ArtifactIO
from edgekit.sources.base import Model

_STACK = ("onnxruntime", "onnxruntime_genai")


def _build(ctx: StepContext) -> StepNotes:
    from edgekit.backends.ort_genai.build import build

    return build(ctx)


def _runner(path: Path, io: ArtifactIO | None, threads: int | None = None):
    from edgekit.backends.ort_genai.runner import GenAIRunner

    return GenAIRunner(path, io, threads)


def describe_io(path: Path, model: Model) -> ArtifactIO:
    """The prefill's inputs and logits, as the folder's decoder declares them."""
    from edgekit.backends.ort_genai.runner import signature

    return ArtifactIO.from_signature(signature(path).with_roles(model.signature))


def _describe_generation(path: Path) -> dict[str, Any]:
    from edgekit.backends.ort_genai.runner import generation_facts

    return generation_facts(path)


BACKEND = Backend(
    runtime="ort-genai",
    versioned=("onnxruntime-genai",),
    format="ort-genai",
    suffixes=(".genai",),
    folders=True,
    runner=_runner,
    describe_io=describe_io,
    worker_loader=Path(__file__).with_name("worker_loader.py"),
    generation_loader=Path(__file__).with_name("generation_loader.py"),
    describe_generation=_describe_generation,
    runtime_modules=_STACK,
    converters=(
        Converter(
            "torch",
            "ort-genai",
            _build,
            "onnxruntime_genai.models.builder",
            needs=(*_STACK, "transformers"),
            quantizes=("weight-only",),
        ),
    ),
    extra="genai",
    options=GenAIOptions,
)
