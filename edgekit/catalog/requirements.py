"""What this machine lacks of a target's declared requirements (its YAML's `requires`: modules and hardware),
and how to install the missing modules."""

from __future__ import annotations

from edgekit._lazy import EXTRAS, INSTALL, NO_DEPS, available
from edgekit.catalog.detect import has_nvidia_gpu
from edgekit.catalog.schema import Requirements, Target

_HARDWARE = {"nvidia-gpu": (has_nvidia_gpu, "an NVIDIA GPU")}


def engine_lacking(target: Target) -> list[str]:
    """What this machine lacks to build and run the target's engine stage (its YAML's `engine.requires`);
    empty when it can, or when the target has no engine stage."""
    return lacking(target.engine.requires, None)[1] if target.engine is not None else []


def lacking(requires: Requirements, backend_extra: str | None) -> tuple[list[str], list[str]]:
    """The modules and hardware missing here, and a reason line for each kind (`backend_extra`: the extra of the
    target's backend, for its modules the shared table does not name)."""
    missing = [m for m in requires.modules if not available(m)]
    no_hardware = [label for hw in requires.hardware for check, label in [_HARDWARE[hw]] if not check()]
    reasons = [f"needs {label}" for label in no_hardware]
    if missing:
        reasons.append(f"needs {', '.join(missing)} ({_how_to_install(missing, backend_extra)})")
    return missing + no_hardware, reasons


def _how_to_install(modules: list[str], backend_extra: str | None) -> str:
    extras = sorted(
        {extra for m in modules if m not in NO_DEPS and m not in INSTALL if (extra := EXTRAS.get(m) or backend_extra)}
    )
    no_deps = sorted({NO_DEPS[m] for m in modules if m in NO_DEPS})
    how = (
        ([f"pip install 'edgekit[{','.join(extras)}]'"] if extras else [])
        + [f"pip install --no-deps {packages}" for packages in no_deps]
        + [INSTALL[m] for m in modules if m in INSTALL and m not in EXTRAS]
    )
    return "; ".join(how) or "not installed"
