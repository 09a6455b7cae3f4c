"""The contract of `edgekit diff --json`. The JSON Schema ships in the package (edgekit/schemas/diff-1.schema.json;
regenerate with `python -m edgekit.layerdiff.schema`); tests validate real diffs against it. Keys not named here may
be added in a later schema version."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from edgekit.contract import document_schema, rewrite

SCHEMA_VERSION = "1"
SCHEMA_FILE = Path(__file__).parent.parent / "schemas" / f"diff-{SCHEMA_VERSION}.schema.json"


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class DiffLayer(_Open):
    """One weighted layer of the reference, in execution order."""

    layer: str = Field(description="the reference's layer name (a torch module path, an ONNX node)")
    kind: str
    tensors: list[str] = Field(description="the artifact's tensors compared: its input, its output")
    artifact_layer: str | None = None
    quantization: str | None = Field(
        None, description="how the artifact computes the layer (w: its weights, a: its input activations)"
    )
    weight_cosine: float | None = Field(None, description="how alike the two layers' weights are (the match)")
    metrics: dict[str, float | int | None] = Field(
        description="the output's snr_db (null: exact), median_channel_snr_db, cosine, max_abs, relative_error, "
        "over_tolerance"
    )
    folded_scale: float | None = Field(
        None, description="a constant a converter folded into the layer's float weights, divided out of its output"
    )
    input_relative_error: float | None = None
    added_error: float | None = Field(None, description="the relative error the layer adds beyond its input's")
    passed: bool | None = Field(description="within the tolerance; null: not compared (see `unmatched`)")
    unmatched: str | None = None


class DiffDocument(_Open):
    schema_version: Literal["1"]
    artifact: str
    reference: str
    runtime: str
    samples: int
    metric: Literal["snr", "cosine", "max-abs"]
    threshold: float | None
    first_divergent: str | None = Field(description="the first layer past the tolerance; null when none is")
    most_added_error: str | None
    coverage: float = Field(description="the share of the reference's weighted layers compared")
    matched: float = Field(description="the share whose weights the file holds (compared or not)")
    layers: list[DiffLayer]
    unmatched_artifact_layers: list[str]
    notes: list[str]
    reduced: dict[str, Any] | None = Field(
        None, description="--reduce: the folder, its piece's nodes and node_count, start_layer, end_layer, metrics"
    )


def json_schema() -> dict[str, Any]:
    return document_schema(DiffDocument, f"edgekit diff {SCHEMA_VERSION}")


if __name__ == "__main__":  # python -m edgekit.layerdiff.schema: rewrite the shipped JSON Schema
    rewrite(SCHEMA_FILE, json_schema())
