"""The OpenVINO IR pair: a .xml graph and the .bin of its weights (same stem), one artifact in two files."""

from __future__ import annotations

from pathlib import Path


def companions(xml: Path) -> tuple[Path, ...]:
    """The files that travel and publish with an .xml: the .bin OpenVINO reads beside it."""
    return (Path(xml).with_suffix(".bin"),)
