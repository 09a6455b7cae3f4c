"""The contract of `edgekit search`'s OUT/search.json. The JSON Schema ships in the package
(edgekit/schemas/search-1.schema.json; regenerate with `python -m edgekit.release.search_schema`); tests
validate real searches against it. Keys not named here may be added in a later schema version."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from edgekit.contract import document_schema, rewrite

SCHEMA_VERSION = "1"
SCHEMA_FILE = Path(__file__).parent.parent / "schemas" / f"search-{SCHEMA_VERSION}.schema.json"


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class SearchTrial(_Open):
    """One trial: a target for a device profile with its runtime's options, and what it gave."""

    name: str
    device: str = Field(description="the device profile")
    target: str
    options: dict[str, dict[str, Any]] = Field(description="the runtime's options, by runtime")
    calibration_samples: int | None = Field(None, description="the calibration samples the export read, where the "
                                            "space varied it")  # fmt: skip
    keep_sensitive: int | None = Field(None, description="the most sensitive layers the export kept float from its "
                                       "first attempt, where the space varied it")  # fmt: skip
    compress: dict[str, Any] | None = Field(None, description="the compression the source went through before "
                                            "the export, where the space asked for it")  # fmt: skip
    status: Literal["passed", "over budget", "failed"]
    error: str | None = Field(None, description="why a failed trial stopped (its first failing step)")
    file: str | None = Field(None, description="the file in the step cache")
    sha256: str | None = None
    same_file_as: str | None = Field(None, description="an earlier trial whose file has the same bytes")
    size_bytes: int | None = None
    accuracy: float | None = None
    accuracy_drop_pts: float | None = None
    p50_ms: float | None = None
    p90_ms: float | None = None
    peak_rss_mb: float | None = Field(None, description="peak resident memory of the benchmark's process")
    over_budget: list[str] = Field(default_factory=list, description="the budgets it missed")
    results: list[str] = Field(default_factory=list, description="its evaluate and benchmark JSON (step cache)")


class Choice(_Open):
    trial: str
    file: str = Field(description="the chosen file, copied with its sidecar to OUT/DEVICE/")
    bundle: str | None = Field(None, description="its app bundle (--bundle)")


class SearchDocument(_Open):
    schema_version: Literal["1"]
    source: str
    strategy: str
    budgets: dict[str, float | None]
    bench_device: str
    space_size: int = Field(description="trials in the whole space, of which `trials` ran")
    time_budget_s: float | None = Field(None, description="--time: no round of trials started after it")
    stopped: str | None = Field(None, description="why the search ran fewer trials than asked (the time budget)")
    steps: dict[str, int] = Field(description="steps that ran and that came from the cache")
    trials: list[SearchTrial]
    front: dict[str, list[str]] = Field(description="per device profile, the trials on the Pareto front")
    choices: dict[str, Choice] = Field(description="per device profile with a file within the budgets")


def json_schema() -> dict[str, Any]:
    return document_schema(SearchDocument, f"edgekit search {SCHEMA_VERSION}")


if __name__ == "__main__":  # python -m edgekit.release.search_schema: rewrite the shipped JSON Schema
    rewrite(SCHEMA_FILE, json_schema())
