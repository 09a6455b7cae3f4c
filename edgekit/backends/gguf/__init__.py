"""llama.cpp for causal LMs: single GGUF files (weights, hyperparameters and tokenizer in one), written by edgekit
from a Hugging Face folder in f32 or f16 and quantized by llama.cpp's own quantizer (q8_0, q4_k_m); run with
llama-cpp-python, as an app embedding llama.cpp does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgekit.backends.base import Backend, Converter, GenerationTool, StepContext, StepNotes
from edgekit.backends.gguf import llama_bench
from edgekit.backends.gguf.options import GGUFOptions
from edgekit.backends.llm import PREFILL_INPUTS
from edgekit.sidecar import ArtifactIO
from edgekit.sources.base import Model
from edgekit.spec import Signature, TensorSpec

_STACK = ("llama_cpp",)


def _build(ctx: StepContext) -> StepNotes:
    from edgekit.backends.gguf.build import build

    return build(ctx)


def _runner(path: Path, io: ArtifactIO | None, threads: int | None = None):
    from edgekit.backends.gguf.runner import LlamaCppRunner

    return LlamaCppRunner(path, io, threads)


def describe_io(path: Path, model: Model) -> ArtifactIO:
    """Token ids and mask in, logits over the file's vocabulary out (with the source's output roles)."""
    from edgekit.backends.gguf.runner import metadata

    logits = TensorSpec("logits", "float32", ("batch", "sequence", metadata(path)["tokenizer.ggml.tokens"]))
    return ArtifactIO.from_signature(Signature(PREFILL_INPUTS, (logits,)).with_roles(model.signature))


def describe_generation(path: Path) -> dict[str, Any]:
    """Context length, end-of-text id, the f16 key/value cache's bytes at the full context (llama.cpp's default
    cache type) and whether a chat template is in the file."""
    from edgekit.backends.gguf.runner import metadata

    keys = metadata(path)
    arch = keys["general.architecture"]
    context, layers = int(keys[f"{arch}.context_length"]), int(keys[f"{arch}.block_count"])
    kv_heads = int(keys.get(f"{arch}.attention.head_count_kv", keys[f"{arch}.attention.head_count"]))
    head_size = int(keys.get(f"{arch}.attention.key_length", keys[f"{arch}.embedding_length"] // kv_heads))
    eos = keys.get("tokenizer.ggml.eos_token_id")
    return {
        "context_length": context,
        "eos_token_ids": [] if eos is None else [int(eos)],
        "kv_cache_bytes": 2 * layers * kv_heads * head_size * 2 * context,  # keys and values, 2 bytes each
        "chat_template": "tokenizer.chat_template" in keys,
    }


BACKEND = Backend(
    runtime="gguf",
    versioned=("gguf", "llama-cpp-python"),
    format="gguf",
    suffixes=(".gguf",),
    runner=_runner,
    describe_io=describe_io,
    worker_loader=Path(__file__).with_name("worker_loader.py"),
    generation_loader=Path(__file__).with_name("generation_loader.py"),
    describe_generation=describe_generation,
    generation_tool=GenerationTool("llama-bench", llama_bench.commands, llama_bench.parse),
    runtime_modules=_STACK,
    converters=(
        Converter(
            "torch",
            "gguf",
            _build,
            "edgekit's GGUF writer (gguf) + llama.cpp's quantizer",
            needs=("gguf", *_STACK, "transformers"),
            quantizes=("fp16", "weight-only"),
        ),
    ),
    extra="llamacpp",
    options=GGUFOptions,
)
