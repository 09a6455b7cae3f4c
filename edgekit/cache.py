"""Where edgekit keeps what it builds once and reuses: datasets, demo models, teacher logits."""

from __future__ import annotations

import os
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
