"""ExecuTorch for causal LMs: folders holding a .pte with a static key/value cache (one token in, next-token logits
out, XNNPACK), generation.json and the tokenizer; fp32, or 8da4w (int4 grouped weights, int8 dynamic activations)."""

from __future__ import annotations

from pathlib import Path

from edgekit.backends.base import Backend, Converter, GenerationTool, StepContext, StepNotes
from edgekit.backends.executorch_llm import llama_main
from edgekit.backends.executorch_llm.options import ExecuTorchLLMOptions
from edgekit.backends.llm import generation_facts, prefill_io
from edgekit.sidecar import ArtifactIO

_STACK = ("executorch", "torch")


def _build(ctx: StepContext) -> StepNotes:
    from edgekit.backends.executorch_llm.build import build

    return build(ctx)


def _runner(path: Path, io: ArtifactIO | None, threads: int | None = None):
    from edgekit.backends.executorch_llm.runner import ExecuTorchLLMRunner

    return ExecuTorchLLMRunner(path, io, threads)


BACKEND = Backend(
    runtime="executorch-llm",
    app_platforms=("android", "ios"),
    versioned=("executorch", "torchao"),
    format="executorch-llm",
    suffixes=(".etllm",),
    folders=True,
    runner=_runner,
    describe_io=prefill_io,
    worker_loader=Path(__file__).with_name("worker_loader.py"),
    generation_loader=Path(__file__).with_name("generation_loader.py"),
    describe_generation=generation_facts,
    generation_tool=GenerationTool("llama_main", llama_main.commands, llama_main.parse),
    runtime_modules=_STACK,
    converters=(
        Converter(
            "torch",
            "executorch-llm",
            _build,
            "torch.export with a static cache + ExecuTorch (XNNPACK)",
            needs=(*_STACK, "torchao", "transformers"),
            quantizes=("int4-dynamic",),
        ),
    ),
    options=ExecuTorchLLMOptions,
)
