"""ONNX Runtime GenAI's export settings: int4 blocks and compute, and the size of the generation check."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from edgekit.backends.llm import GenerationCheck


class GenAIOptions(GenerationCheck):
    block_size: Literal[16, 32, 64, 128, 256] = Field(
        32,
        description="int4: weights per quantization block (a scale each); smaller blocks keep more accuracy",
        json_schema_extra={"search": [32, 128], "quantizations": ["weight-only"]},
    )
    accuracy_level: Literal[0, 1, 2, 3, 4] = Field(
        4,
        description="int4: what the 4-bit MatMul computes in on the CPU (4: int8 activations, fastest; 1: fp32)",
    )
    int4_embeddings: bool = Field(
        True,
        description="int4: the token embedding table in 4-bit blocks too (GatherBlockQuantized): a 120M Llama's "
        "folder 6.3x smaller than fp32 instead of 3.1x, perplexity +0.39 % instead of +0.22 % on a tiny one",
        json_schema_extra={"quantizations": ["weight-only"]},
    )
