"""Model: a loaded source plus its signature, format and provenance."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekit.checksum import sha256_path
from edgekit.spec import Signature

__all__ = ["Model", "sha256_path"]


@dataclass
class Model:
    """A loaded source model.

    format: the route graph node it starts from (torch, keras, onnx).
    kind: how it was stored (onnx, keras3, tf-keras, savedmodel, torchscript, exported-program, factory, hf).
    obj: the framework object (nn.Module, ScriptModule, ExportedProgram, Keras model, onnx.ModelProto...).
    """

    format: str
    kind: str
    source: str
    obj: Any
    signature: Signature
    source_hash: str
    name: str
    tokenizer_dir: Path | None = None
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {"path": self.source, "kind": self.kind, "format": self.format, "sha256": self.source_hash}
