"""OpenVINO for causal LMs: folders holding a stateful IR (the key/value cache kept inside the model), the tokenizer
as OpenVINO models and as Hugging Face files, and generation.json; weights in fp32, int8, or int4 groups (NNCF);
run with OpenVINO GenAI's LLMPipeline, as an app does."""

from __future__ import annotations

from pathlib import Path

from edgekit.backends.base import Backend, Converter, StepContext, StepNotes
from edgekit.backends.llm import generation_facts, prefill_io
from edgekit.backends.openvino_llm.options import OpenVINOLLMOptions
from edgekit.sidecar import ArtifactIO

_STACK = ("openvino", "openvino_genai", "openvino_tokenizers")


def _build(ctx: StepContext) -> StepNotes:
    from edgekit.backends.openvino_llm.build import build

    return build(ctx)


def _runner(path: Path, io: ArtifactIO | None, threads: int | None = None):
    from edgekit.backends.openvino_llm.runner import OpenVINOLLMRunner

    return OpenVINOLLMRunner(path, io, threads)


BACKEND = Backend(
    runtime="openvino-llm",
    versioned=("openvino", "openvino-genai", "openvino-tokenizers", "nncf"),
    format="openvino-llm",
    suffixes=(".ovllm",),
    folders=True,
    runner=_runner,
    describe_io=prefill_io,
    worker_loader=Path(__file__).with_name("worker_loader.py"),
    generation_loader=Path(__file__).with_name("generation_loader.py"),
    describe_generation=generation_facts,
    runtime_modules=_STACK,
    converters=(
        Converter(
            "torch",
            "openvino-llm",
            _build,
            "OpenVINO's PyTorch frontend with a stateful cache + NNCF weight compression",
            needs=(*_STACK, "nncf", "transformers"),
            quantizes=("weight-only",),
        ),
    ),
    extra="openvino",
    options=OpenVINOLLMOptions,
)
