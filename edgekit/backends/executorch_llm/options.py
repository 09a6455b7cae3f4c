"""ExecuTorch LLM export settings: the cache's length, the 4-bit group size, and the generation check's size."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from edgekit.backends.llm import GenerationCheck


class ExecuTorchLLMOptions(GenerationCheck):
    context: int | None = Field(
        None,
        ge=8,
        description="tokens the static key/value cache holds, prompt and generated together (default: the model's "
        "positions, at most 2048)",
    )
    group_size: Literal[32, 64, 128, 256] = Field(
        32,
        description="int4 weights per group (a scale each); smaller groups keep more accuracy",
        json_schema_extra={"quantizations": ["int4-dynamic"]},
    )
    int8_embeddings: bool = Field(
        True,
        description="8da4w: the token embedding table in int8, a scale per row (ExecuTorch's embedding_byte kernel); "
        "a table tied to the output layer stays float",
        json_schema_extra={"quantizations": ["int4-dynamic"]},
    )
    custom_sdpa: bool = Field(
        True,
        description="attention by ExecuTorch's LLM kernel (llama::custom_sdpa) over the positions in use, not "
        "transformers' over the whole cache; a runtime without ExecuTorch's LLM kernels needs it off",
    )
