"""The contract of `edgekit benchmark --generate --json`: a list of runs, one per generative artifact, thread
count and prompt length. The JSON Schema ships in the package (edgekit/schemas/generation-1.schema.json;
regenerate with `python -m edgekit.bench.generation_schema`); tests validate real runs against it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from edgekit.bench.schema import Latency
from edgekit.contract import list_schema, rewrite

SCHEMA_VERSION = "1"
SCHEMA_FILE = Path(__file__).parent.parent / "schemas" / f"generation-{SCHEMA_VERSION}.schema.json"


class Rate(BaseModel):
    """A per-process figure: the median over fresh processes and its 95% bootstrap interval."""

    model_config = ConfigDict(extra="allow")
    median: float
    median_ci95: list[float] | None = Field(None, description="None with fewer than 3 processes")
    processes: list[float] = Field(description="each process's own median")


class GenerationRun(BaseModel):
    model_config = ConfigDict(extra="allow")
    schema_version: str = SCHEMA_VERSION
    artifact: str
    target: str | None
    device: str
    threads: int
    prompt_tokens: int
    new_tokens: int
    generations: int = Field(description="timed generations, over every process")
    load_ms: Rate | None = Field(description="loading the model, in a fresh process; None from a tool that does not")
    time_to_first_token_ms: Rate = Field(description="prefill of the prompt and the first new token")
    prefill_tokens_per_s: Rate | None = Field(
        description="prompt tokens / time to first token; None where a tool timed a prompt as 0 ms (its resolution)"
    )
    decode_tokens_per_s: Rate = Field(description="new tokens after the first / the time they took")
    token_latency_ms: Latency = Field(
        description="each new token after the first, every timed generation; from a runtime's own tool only the "
        "mean over its repetitions (percentiles None)"
    )
    peak_rss_mb: float | None
    memory_method: str | None = Field(None, description="how peak_rss_mb was read")
    size_bytes: int
    environment: dict[str, Any]


def json_schema() -> dict[str, Any]:
    return list_schema(
        GenerationRun,
        f"edgekit benchmark --generate --json {SCHEMA_VERSION}",
        "A list of runs: one per generative artifact, thread count and prompt length.",
    )


if __name__ == "__main__":  # python -m edgekit.bench.generation_schema: rewrite the shipped JSON Schema
    rewrite(SCHEMA_FILE, json_schema())
