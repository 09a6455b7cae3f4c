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
    path.mkdir(parents=True, exist_ok=True)
    return path
