"""Runners: one interface for every runtime; open_runner picks one from an artifact's suffix."""
from __future__ import annotations

from pathlib import Path

from edgekit.errors import UsageError
from edgekit.runners.base import Runner

# artifact suffix -> "module:class"; the module is imported only when that runtime is used
RUNNERS = {
    ".onnx": "edgekit.runners.onnxrt:OnnxRuntimeRunner",
    ".ptl": "edgekit.runners.ptl:LiteInterpreterRunner",
    ".tflite": "edgekit.runners.litert:LiteRTRunner",
    ".pte": "edgekit.runners.pte:ExecuTorchRunner",
}


def open_runner(path: str | Path, **options) -> Runner:
    """A (not yet activated) runner for an exported file, chosen by its suffix."""
    import importlib

    path = Path(path)
    if not path.exists():
        raise UsageError(f"Artifact {path} does not exist.")
    spec = RUNNERS.get(path.suffix)
    if spec is None:
        raise UsageError(f"No runner for '{path.suffix}' files in this version.",
                         hint=f"Runners exist for: {', '.join(RUNNERS)}.")
    module, _, cls = spec.partition(":")
    return getattr(importlib.import_module(module), cls)(path, **options)


__all__ = ["RUNNERS", "Runner", "open_runner"]
