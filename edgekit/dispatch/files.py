"""An artifact's files, as its runtime's backend declares them (an OpenVINO .xml's .bin; folder artifacts)."""

from __future__ import annotations

from pathlib import Path

from edgekit.artifact import check_complete
from edgekit.backends.registry import backend_for_file, backends
from edgekit.errors import UsageError, require_file


def artifact_files(path: Path) -> list[Path]:
    """An artifact's files: itself, then the companions its runtime reads beside it (an OpenVINO .xml's .bin)."""
    return [Path(path), *backend_for_file(path).companions(Path(path))]


def require_artifact(path: Path) -> Path:
    """An exported file that exists, is a file (or a folder, for runtimes whose artifacts are folders), is not
    empty and has its companions beside it (else exit 2)."""
    if path.is_dir() and is_folder_artifact(path):
        if not any(path.iterdir()):
            raise UsageError(f"Artifact {path} is an empty folder: an interrupted copy or export?")
        return path
    require_file(path, "Artifact")
    if path.stat().st_size == 0:
        raise UsageError(f"Artifact {path} is empty (0 bytes): an interrupted copy or export?")
    check_complete(path, tuple(artifact_files(path)[1:]))
    return path


def is_folder_artifact(path: Path) -> bool:
    """Whether `path`'s runtime writes folders (an ONNX Runtime GenAI model), judged by its suffix."""
    return any(b.folders and path.suffix in b.suffixes for b in backends().values())
