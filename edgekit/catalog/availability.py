"""Can a target be exported and run on this machine, and if not, why not (derived from the backend registry)."""

from __future__ import annotations

from dataclasses import dataclass

from edgekit._lazy import EXTRAS, INSTALL, NO_DEPS, available
from edgekit.catalog.detect import has_nvidia_gpu
from edgekit.catalog.schema import Requirements, Target

_HARDWARE = {"nvidia-gpu": (has_nvidia_gpu, "an NVIDIA GPU")}


@dataclass(frozen=True)
class Availability:
    runs_here: bool
    exports_here: bool
    reason: str  # empty when both are true
    # targets with an engine stage (TensorRT): whether this machine builds and runs the engine, and what it lacks
    engine_here: bool | None = None
    engine_reason: str = ""


def availability(target: Target) -> Availability:
    from edgekit.backends.registry import backend_for_runtime, known_suffixes, supports

    backend = backend_for_runtime(target.runtime)
    has_runner = target.suffix in known_suffixes()  # a TensorRT-ready ONNX runs in ONNX Runtime
    has_route = supports(target.runtime, target.quantization)
    lacking, reasons = _lacking(target.requires, backend.extra if backend else None)
    if not (has_runner and has_route):
        reasons.append("not built in this version of edgekit")
    engine_here, engine_reason = None, ""
    if target.engine is not None:
        engine_reasons = engine_lacking(target)
        engine_here = not engine_reasons
        if engine_reasons:
            engine_reason = f"the {target.engine.suffix} engine is built where {target.runtime} runs: " + "; ".join(
                engine_reasons
            )
    return Availability(
        has_runner and not lacking, has_route and not lacking, "; ".join(reasons), engine_here, engine_reason
    )


def engine_lacking(target: Target) -> list[str]:
    """What this machine lacks to build and run the target's engine stage (its YAML's `engine.requires`);
    empty when it can, or when the target has no engine stage."""
    return _lacking(target.engine.requires, None)[1] if target.engine is not None else []


def _lacking(requires: Requirements, backend_extra: str | None) -> tuple[list[str], list[str]]:
    """The modules and hardware missing here, and a reason line for each kind."""
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
