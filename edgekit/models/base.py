"""Model: a loaded source plus its signature, format and provenance."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekit.spec import Signature

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


def sha256_path(path: Path) -> str:
    """sha256 of a file, or of every file in a folder (relative names and contents, sorted)."""
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        if path.is_dir():
            h.update(str(f.relative_to(path)).encode())
        with f.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()
