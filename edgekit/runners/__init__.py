"""Runners: one interface for every runtime. open_runner picks the backend that runs a file."""

from __future__ import annotations

from pathlib import Path

from edgekit.artifact import require_artifact
from edgekit.errors import ModelLoadError
from edgekit.runners.base import Runner
from edgekit.sidecar import ArtifactIO, read_io


def open_runner(path: str | Path, io: ArtifactIO | None = None, threads: int | None = None) -> Runner:
    """A (not yet activated) runner for an exported file. `io` describes its tensors; by default it is
    read from the file's sidecar, which files that cannot describe themselves (.ptl, .pte) need."""
    from edgekit.backends.registry import backend_for_file

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


__all__ = ["Runner", "open_runner"]
