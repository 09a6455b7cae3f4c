"""Hugging Face causal-LM folder -> GGUF file: written in f32 or f16 by edgekit (write.py), quantized from the f32
file by llama.cpp's own quantizer (q8_0, q4_k_m), then proved by generation: greedy tokens from the file in
llama.cpp, through its cache, against the source's (transformers, every position recomputed)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from edgekit._lazy import require
from edgekit.backends.base import StepContext, StepNotes
from edgekit.backends.gguf.options import GGUFOptions
from edgekit.backends.gguf.worker_loader import open_model
from edgekit.backends.gguf.write import write_gguf
from edgekit.backends.llm import check_generation, hf_causal_lm
from edgekit.catalog import get_target
from edgekit.errors import ConversionError, first_line
from edgekit.quiet import quiet

MAX_CONTEXT = 2048
# the target's precision -> the llama.cpp file type (llama_ftype) its quantizer writes from the f32 file: q8_0
# (8-bit blocks of 32, a scale each) and q4_k_m (4-bit super-blocks of 256 with 6-bit scales; the attention's
# value and the feed-forward's down projections of half the layers in 6 bits)
FILE_TYPES = {"int8": "LLAMA_FTYPE_MOSTLY_Q8_0", "int4": "LLAMA_FTYPE_MOSTLY_Q4_K_M"}


def build(ctx: StepContext) -> StepNotes:
    folder = hf_causal_lm(ctx.model, "llama.cpp (GGUF)")
    options = ctx.options
    assert isinstance(options, GGUFOptions)  # the registry resolved this backend's own model
    llama_cpp = require("llama_cpp", "Quantizing and running GGUF files", extra="llamacpp")
    model = ctx.model.obj.model
    positions = int(getattr(model.config, "max_position_embeddings", MAX_CONTEXT))
    context = options.context or min(positions, MAX_CONTEXT)
    precision = get_target(ctx.recipe.target).precision
    with tempfile.TemporaryDirectory(prefix="edgekit-gguf-") as tmp:
        written = ctx.out if precision in ("fp32", "fp16") else Path(tmp) / "f32.gguf"  # what llama.cpp quantizes
        details: dict[str, Any] = {**write_gguf(model, folder, written, context, half=precision == "fp16"),
                                   "context_length": context}  # fmt: skip
        if precision in FILE_TYPES:
            details["quantizer"] = _quantize(llama_cpp, written, ctx.out, precision)
    try:
        with quiet():
            llm = open_model(llama_cpp, str(ctx.out), threads=None, context=context, exact_cache=True)
    except ValueError as e:
        raise ConversionError(f"llama.cpp cannot load the GGUF file it was given: {first_line(e)}") from None
    details["generation"] = check_generation(
        ctx, lambda prompt, n: generate_greedy(llm, prompt, n), options.prompts, options.new_tokens
    )
    return StepNotes(details, applied={"fp32": None, "fp16": "fp16"}.get(precision, "weight-only"))


def _quantize(llama_cpp: Any, src: Path, dst: Path, precision: str) -> str:
    """llama.cpp's quantizer (llama_model_quantize) from the f32 file to `precision`."""
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, FILE_TYPES[precision])
    with quiet():
        failed = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), params)
    if failed or not dst.is_file():
        raise ConversionError(f"llama.cpp's quantizer could not write {precision} (llama_model_quantize returned "
                              f"{failed}).")  # fmt: skip
    return f"llama.cpp llama_model_quantize ({FILE_TYPES[precision]})"


def generate_greedy(llm: Any, prompt: list[int], new_tokens: int) -> list[int]:
    """`new_tokens` greedy tokens after `prompt`, llama.cpp reading one new token a step through its cache."""
    import numpy as np

    llm.reset()
    llm.eval(prompt)
    out: list[int] = []
    for _ in range(new_tokens):
        out.append(int(np.argmax(llm.scores[llm.n_tokens - 1])))
        llm.eval([out[-1]])
    return out
