"""The JSON Schemas edgekit ships for its documents (edgekit/schemas/): built from their pydantic models and
rewritten by each schema module's `python -m`, so the files cannot drift from the code."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

DRAFT = "https://json-schema.org/draft/2020-12/schema"


def document_schema(model: type[BaseModel], title: str) -> dict[str, Any]:
    """The JSON Schema of one document whose shape is `model`."""
    return {"$schema": DRAFT, "title": title, **model.model_json_schema()}


def list_schema(model: type[BaseModel], title: str, description: str) -> dict[str, Any]:
    """The JSON Schema of a document that is a list of `model` items (benchmark runs)."""
    schema = model.model_json_schema()
    return {
        "$schema": DRAFT,
        "title": title,
        "description": description,
        "type": "array",
        "items": {"$ref": f"#/$defs/{model.__name__}"},
        "$defs": {**schema.pop("$defs", {}), model.__name__: schema},
    }


def rewrite(path: Path, schema: dict[str, Any]) -> None:
    """Write the shipped schema file (what a schema module's `python -m` does)."""
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(schema, indent=2) + "\n")
    print(path)
