"""load(source) -> Model: recognizes the source kind and dispatches to its loader."""

from __future__ import annotations

import re
from pathlib import Path

from edgekit.errors import ModelLoadError
from edgekit.sources.base import Model, sha256_path
from edgekit.spec import TensorSpec

KINDS = (
    ".onnx file; Keras .keras/.h5 file or SavedModel folder; TorchScript .pt; ExportedProgram .pt2; "
    "local Hugging Face folder (config.json); or package.module:factory"
)
_FACTORY = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def load(source: str | Path, inputs: tuple[TensorSpec, ...] = (), weights: str | Path | None = None) -> Model:
    """Load any supported source; `inputs` fills in or overrides the signature."""
    text = str(source)
    path = Path(text)
    if not path.exists():
        if _FACTORY.match(text):
            from edgekit.sources.torch_source import load_factory

            return load_factory(text, inputs, Path(weights) if weights else None)
        raise ModelLoadError(f"Model source '{text}' does not exist.", hint=f"SOURCE is one of: {KINDS}.")
    if path.is_dir():
        if (path / "saved_model.pb").exists():
            from edgekit.sources.keras_source import load_keras

            return load_keras(path, inputs)
        if (path / "config.json").exists():
            from edgekit.sources.hf_source import load_hf

            return load_hf(path, inputs)
        raise ModelLoadError(
            f"Folder {path} is neither a SavedModel (saved_model.pb) nor a Hugging Face model (config.json)."
        )
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        from edgekit.sources.onnx_source import load_onnx

        return load_onnx(path)
    if suffix in (".keras", ".h5"):
        from edgekit.sources.keras_source import load_keras

        return load_keras(path, inputs)
    if suffix == ".pt":
        from edgekit.sources.torch_source import load_torchscript

        return load_torchscript(path, inputs)
    if suffix == ".pt2":
        from edgekit.sources.torch_source import load_exported_program

        return load_exported_program(path, inputs)
    raise ModelLoadError(f"Unknown model file type '{suffix or path.name}'.", hint=f"SOURCE is one of: {KINDS}.")


__all__ = ["Model", "load", "sha256_path"]
