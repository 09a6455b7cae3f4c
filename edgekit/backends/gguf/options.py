"""llama.cpp (GGUF) export settings: the context the file declares, and the generation check's size."""

from __future__ import annotations

from pydantic import Field

from edgekit.backends.llm import GenerationCheck


class GGUFOptions(GenerationCheck):
    context: int | None = Field(
        None,
        ge=8,
        description="tokens the key/value cache holds, prompt and generated together (default: the model's "
        "positions, at most 2048); a GGUF file declares it as its context length",
    )
