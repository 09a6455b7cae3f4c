"""coremltools imported quietly (on Linux it prints that its native model proxy cannot load), and what this
machine can do with a Core ML package: convert and read it anywhere, predict only on macOS."""

from __future__ import annotations

import sys
from types import ModuleType
from typing import Any

from edgekit._lazy import require
from edgekit.errors import UsageError

EXTRA = "coreml"
PLATFORMS = "macOS and iOS"


def coremltools(purpose: str) -> ModuleType:
    """coremltools, imported without its Linux chatter; a missing one names the coreml extra."""
    from edgekit.quiet import quiet

    if "coremltools" in sys.modules:
        return sys.modules["coremltools"]
    with quiet():
        return require("coremltools", purpose, extra=EXTRA)


def deployment_target(ct: ModuleType, name: str) -> Any:
    """The coremltools.target member named `name`, or a UsageError naming it and the ones this coremltools has."""
    member = ct.target.__members__.get(name)
    if member is None:
        known = ", ".join(ct.target.__members__)
        raise UsageError(
            f"coremltools {ct.__version__} has no deployment target '{name}' (--deployment-target).",
            hint=f"Its targets: {known}.",
        )
    return member


def why_not_here() -> str | None:
    """Why this machine cannot run Core ML packages (None on macOS): Core ML itself exists only on Apple's OSes."""
    if sys.platform == "darwin":
        return None
    return f"Core ML packages run on {PLATFORMS} only, and this machine runs {sys.platform.capitalize()}"


def cannot_run_here() -> str | None:
    """The Backend hook: why an export here cannot measure parity, and what it checked instead (None on macOS)."""
    why = why_not_here()
    return f"{why}. {CHECKED_INSTEAD}" if why else None


HOW_TO_RUN = (
    "Run it on a Mac: `edgekit evaluate FILE --data DATA --device ssh://user@mac` or `edgekit benchmark FILE "
    "--device ssh://user@mac` (Python with coremltools and numpy there; docs/evaluate.md, docs/benchmark.md), or "
    "edgekit itself on a Mac with edgekit[coreml]; an iPhone app embeds it with `edgekit bundle --platform ios`."
)
CHECKED_INSTEAD = (
    "Checked here instead, at export: the package read back with coremltools (its spec version and "
    "deployment target, ops, inputs and outputs against the source) and, for the compressed targets, every "
    "compressed weight decompressed against the float one (the sidecar records both)."
)
