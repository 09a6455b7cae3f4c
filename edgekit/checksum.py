"""sha256 of files and folders: the one hashing rule for sources, data, artifacts and bundles."""

from __future__ import annotations

import hashlib
from pathlib import Path


def files_of(path: str | Path) -> list[Path]:
    """A file itself, or every file in a folder, sorted (an artifact that is a folder: an ONNX Runtime GenAI model)."""
    path = Path(path)
    return [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())


def size_of(path: str | Path) -> int:
    """Bytes of a file, or of every file in a folder."""
    return sum(p.stat().st_size for p in files_of(path))


def sha256_path(path: str | Path) -> str:
    """sha256 of a file, or of every file in a folder (relative names and contents, sorted)."""
    path = Path(path)
    h = hashlib.sha256()
    for f in files_of(path):
        if path.is_dir():
            h.update(str(f.relative_to(path)).encode())
        with f.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()
