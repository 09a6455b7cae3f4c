"""Core ML's export settings: the OS release the package needs, compute precision and units, weight compression."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from edgekit.backends.options import BackendOptions


class CoreMLOptions(BackendOptions):
    deployment_target: str = Field(
        "iOS16",
        description="the oldest OS that runs the package, a name of coremltools.target (iOS16, iOS17, iOS18, "
        "macOS13, ...); compressed weights need iOS16/macOS13 or later",
        json_schema_extra={"metavar": "OS"},
    )
    compute_precision: Literal["auto", "float16", "float32"] = Field(
        "auto",
        description="what the float ops compute in: auto is the target's (coreml-fp32: float32, coreml-fp16: "
        "float16) and float16 for the compressed targets, which the Neural Engine needs",
    )
    compute_units: Literal["all", "cpu_only", "cpu_and_gpu", "cpu_and_ne"] = Field(
        "all",
        description="where the package runs on a Mac or iPhone (stored in it; the runner and benchmark use it)",
    )
    max_dynamic_size: int = Field(
        1024,
        ge=1,
        description="the largest size each dynamic input dim (batch, sequence) takes: an ML program's flexible "
        "dims need a bound",
    )
    palettize_bits: Literal[4, 6, 8] = Field(
        6,
        description="coreml-palettized: bits per weight index (a lookup table of 2^bits values per weight)",
        json_schema_extra={"search": [4, 6, 8], "quantizations": ["palettized"]},
    )
    palettize_mode: str = Field(
        "kmeans",
        description="coreml-palettized: how the lookup table is chosen (coremltools' modes: kmeans, uniform, unique)",
        json_schema_extra={"metavar": "MODE", "quantizations": ["palettized"]},
    )
    weight_threshold: int = Field(
        2048,
        ge=0,
        description="coreml-int8, coreml-palettized: weights with fewer elements than this stay float",
        json_schema_extra={"quantizations": ["weight-only", "palettized"]},
    )
