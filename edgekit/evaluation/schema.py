"""The contract of `edgekit evaluate --json`: one report. The JSON Schema ships in the package
(edgekit/schemas/evaluate-1.schema.json; regenerate with `python -m edgekit.evaluation.schema`); tests
validate real reports against it. Keys not named here may be added in a later schema version."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = "1"
SCHEMA_FILE = Path(__file__).parent.parent / "schemas" / f"evaluate-{SCHEMA_VERSION}.schema.json"


class ClassScores(BaseModel):
    precision: float
    recall: float
    f1: float
    support: int


class Metrics(BaseModel):
    """Classification (accuracy, F1, per class, confusion matrix) or language-model (perplexity) metrics."""

    model_config = ConfigDict(extra="allow")

    accuracy: float | None = None
    f1_macro: float | None = None
    f1_micro: float | None = None
    f1_binary: float | None = Field(None, description="two classes only: F1 of class 1")
    per_class: dict[str, ClassScores] | None = None
    confusion_matrix: list[list[int]] | None = Field(None, description="rows: true class, columns: predicted")
    samples: int | None = None
    perplexity: float | None = None
    next_token_accuracy: float | None = Field(None, description="share of scored tokens the model ranks first")
    next_token_agreement: float | None = Field(
        None, description="with --reference: share of scored positions where the file's top token is the source's"
    )
    tokens: int | None = None
    context_length: int | None = None
    stride: int | None = None


class EvaluateReport(BaseModel):
    model_config = ConfigDict(extra="allow")

    schema_version: str = SCHEMA_VERSION
    artifact: str
    target: str | None
    data: str
    metrics: Metrics
    reference: Metrics | None = Field(None, description="the source model's metrics on the same data")
    drop: dict[str, float] = Field(description="points for accuracy/F1, % increase for perplexity")
    max_drop: float | None
    passed: bool
    failures: list[str]
    notes: list[str] = Field(
        default_factory=list,
        description="what the comparison should be read with (a reference that is not the file's own source)",
    )


def json_schema() -> dict[str, Any]:
    schema = EvaluateReport.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema,
            "title": f"edgekit evaluate --json {SCHEMA_VERSION}"}  # fmt: skip


if __name__ == "__main__":  # python -m edgekit.evaluation.schema: rewrite the shipped JSON Schema
    SCHEMA_FILE.write_text(json.dumps(json_schema(), indent=2) + "\n")
    print(SCHEMA_FILE)
