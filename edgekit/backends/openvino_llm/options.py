"""OpenVINO LLM export settings: 4-bit weight groups, the key/value cache's precision, and the size of the
generation check."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from edgekit.backends.llm import GenerationCheck


class OpenVINOLLMOptions(GenerationCheck):
    group_size: Literal[32, 64, 128, 256] = Field(
        64,
        description="int4 weights per group (a scale each); smaller groups keep more accuracy",
        json_schema_extra={"quantizations": ["weight-only"]},
    )
    ratio: float = Field(
        1.0,
        gt=0,
        le=1,
        description="int4: the share of the linear layers' weights in 4 bits (NNCF puts the most sensitive rest in "
        "8 bits); embedding table and head stay 8-bit",
        json_schema_extra={"quantizations": ["weight-only"]},
    )
    symmetric: bool = Field(
        True,
        description="int4: symmetric groups (a scale each, no zero point): what the CPU's 4-bit kernels run fastest",
        json_schema_extra={"quantizations": ["weight-only"]},
    )
    kv_cache: Literal["auto", "f32", "f16", "u8"] = Field(
        "auto",
        description="the key/value cache's precision, written into the model (auto: f32 for fp32 files, u8 for "
        "the quantized ones, OpenVINO's CPU default)",
    )
