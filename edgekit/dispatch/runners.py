"""Opening a runner: the backend that runs an exported file, or the framework a source model came from."""

from __future__ import annotations

from pathlib import Path

from edgekit.backends.registry import backend_for_file
from edgekit.dispatch.files import require_artifact
from edgekit.errors import ModelLoadError
from edgekit.runners.base import Runner
from edgekit.runners.source import KerasRunner, TorchRunner
from edgekit.sidecar import ArtifactIO, read_io
from edgekit.sources.base import Model


def open_runner(path: str | Path, io: ArtifactIO | None = None, threads: int | None = None) -> Runner:
    """A (not yet activated) runner for an exported file. `io` describes its tensors; by default it is
    read from the file's sidecar, which files that cannot describe themselves (.ptl, .pte) need."""
    path = Path(path)
    require_artifact(path)
    backend = backend_for_file(path)
    io = io or read_io(path)
    if io is None and backend.needs_sidecar_io:
        raise ModelLoadError(
            f"{path} has no sidecar with its input tensors; export it with edgekit.",
            hint=f"{backend.runtime} files do not record their input names and shapes.",
        )
    return backend.runner(path, io, threads)


def source_runner(model: Model) -> Runner:
    """The runner that executes a loaded source model in its own framework (an ONNX source in ONNX Runtime)."""
    if model.format == "torch":
        return TorchRunner(model)
    if model.format == "keras":
        return KerasRunner(model)
    from edgekit.backends.onnxruntime.runner import OnnxRuntimeRunner

    return OnnxRuntimeRunner(model.obj.SerializeToString(), None)
