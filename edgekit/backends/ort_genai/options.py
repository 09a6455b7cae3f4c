"""ONNX Runtime GenAI's export settings: int4 blocks and compute, and the size of the generation check."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from edgekit.backends.options import BackendOptions


class GenAIOptions(BackendOptions):
    block_size: Literal[16, 32, 64, 128, 256] = Field(
        32,
        description="int4: weights per quantization block (a scale each); smaller blocks keep more accuracy",
        json_schema_extra={"search": [32, 128], "quantizations": ["weight-only"]},
    )
    accuracy_level: Literal[0, 1, 2, 3, 4] = Field(
        4,
        description="int4: what the 4-bit MatMul computes in on the CPU (4: int8 activations, fastest; 1: fp32)",
    )
    prompts: int = Field(20, ge=1, description="greedy-generation check: how many prompts")
    new_tokens: int = Field(32, ge=1, description="greedy-generation check: tokens generated per prompt")
