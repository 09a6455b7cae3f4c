"""The contract of `edgekit benchmark --json`: a list of runs, one per artifact, thread count and batch. The
JSON Schema ships in the package (edgekit/schemas/benchmark-1.schema.json; regenerate with
`python -m edgekit.bench.schema`); tests validate real runs against it. Keys not named here may be added in
a later schema version; readers ignore what they do not know."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from edgekit.contract import list_schema

SCHEMA_VERSION = "1"
SCHEMA_FILE = Path(__file__).parent.parent / "schemas" / f"benchmark-{SCHEMA_VERSION}.schema.json"


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Latency(_Open):
    """Milliseconds per inference over every timed sample (or the native tool's figures)."""

    p50: float | None
    p90: float | None
    p99: float | None
    mean: float | None
    std: float | None = None
    min: float | None = None
    max: float | None = None
    n: int | None = None
    median_ci95: list[float] | None = Field(None, description="95% interval of the median of the process medians")


class Ratio(_Open):
    """This run's speed against the first artifact's at the same threads and batch (>1: faster)."""

    ratio: float
    ci95: list[float]
    half_width: float | None = None
    rounds: int


class Work(_Open):
    """Arithmetic work at the benchmarked shapes and, on this machine, the efficiency against the GEMM peak."""

    macs: int | None = None
    flops: int | None = None
    int8_flops: int | None = None
    float_flops: int | None = None
    macs_by_op: dict[str, int] | None = None
    uncounted_ops: dict[str, int] | None = None
    achieved_gflops: float | None = None
    peak_gflops: dict[str, float] | None = None
    efficiency: float | None = None
    error: str | None = None


class BenchmarkRun(_Open):
    schema_version: str = SCHEMA_VERSION
    artifact: str
    target: str | None
    device: str
    threads: int
    batch: int
    latency_ms: Latency
    init_ms: float | None
    first_inference_ms: float | None
    peak_rss_mb: float | None
    peak_rss_after_load_mb: float | None = None
    memory_method: str | None
    batch_fed: int
    throughput_per_s: float | None
    size_bytes: int
    size_gzip_bytes: int | None = None
    noisy: bool
    drift: float | None = None
    drift_flag: bool | None = None
    inputs: dict[str, list[int]]
    samples_ms: list[float] = Field(default_factory=list, description="every timed inference; empty for tools")
    environment: dict[str, Any]
    work: Work | None = None
    processes: list[dict[str, Any]] = Field(default_factory=list)
    ratio_to_first: Ratio | None = None


class BenchmarkDocument(BaseModel):
    runs: list[BenchmarkRun]


def json_schema() -> dict[str, Any]:
    return list_schema(
        BenchmarkRun,
        f"edgekit benchmark --json {SCHEMA_VERSION}",
        "A list of runs: one per artifact, thread count and batch.",
    )


if __name__ == "__main__":  # python -m edgekit.bench.schema: rewrite the shipped JSON Schema
    SCHEMA_FILE.write_text(json.dumps(json_schema(), indent=2) + "\n")
    print(SCHEMA_FILE)
