"""Can a target be exported and run on this machine, and if not, why not (derived from the backend registry)."""

from __future__ import annotations

from dataclasses import dataclass

from edgekit._lazy import EXTRAS, NO_DEPS, available
from edgekit.catalog.detect import has_nvidia_gpu
from edgekit.catalog.schema import Target

_HARDWARE = {"nvidia-gpu": (has_nvidia_gpu, "an NVIDIA GPU")}


@dataclass(frozen=True)
class Availability:
    runs_here: bool
    exports_here: bool
    reason: str  # empty when both are true


def availability(target: Target) -> Availability:
    from edgekit.backends.registry import backend_for_runtime, supports

    backend = backend_for_runtime(target.runtime)
    missing = [m for m in target.requires.modules if not available(m)]
    no_hardware = [label for hw in target.requires.hardware for check, label in [_HARDWARE[hw]] if not check()]
    has_runner = backend is not None and target.suffix in backend.suffixes
    has_route = supports(target.runtime, target.quantization)
    reasons = [f"needs {label}" for label in no_hardware]
    if missing:
        reasons.append(f"needs {', '.join(missing)} ({_how_to_install(missing, backend.extra if backend else None)})")
    if not (has_runner and has_route):
        reasons.append("not built in this version of edgekit")
    return Availability(has_runner and not missing and not no_hardware, has_route and not missing, "; ".join(reasons))


def _how_to_install(modules: list[str], backend_extra: str | None) -> str:
    extras = sorted({extra for m in modules if m not in NO_DEPS if (extra := EXTRAS.get(m) or backend_extra)})
    no_deps = sorted({NO_DEPS[m] for m in modules if m in NO_DEPS})
    how = ([f"pip install 'edgekit[{','.join(extras)}]'"] if extras else []) + [
        f"pip install --no-deps {packages}" for packages in no_deps
    ]
    return "; ".join(how) or "not installed"
