"""Where edgekit keeps what it builds once and reuses: datasets, demo models, teacher logits."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path


def cache_dir() -> Path:
    """Where edgekit keeps built datasets and demo models: $EDGEKIT_CACHE, else ~/.cache/edgekit."""
    root = (
        os.environ.get("EDGEKIT_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "edgekit"
    )
    path = Path(root)
    if path.exists() and not path.is_dir():
        from edgekit.errors import UsageError

        raise UsageError(
            f"The cache folder {path} ($EDGEKIT_CACHE) is a file.", hint="Point EDGEKIT_CACHE at a folder."
        )
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        from edgekit.errors import UsageError

        raise UsageError(f"Cannot create the cache folder {path}: {e.strerror}.") from None
    return path


def write_cache_file(path: Path, write: Callable[[Path], object]) -> Path:
    """Fill the cache file `path`: `write` writes a private temporary name beside it, which is then renamed
    into place, so processes filling the same file at once (a sweep's workers) never read half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.{uuid.uuid4().hex[:8]}{path.suffix}")  # savez keeps .npz
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
