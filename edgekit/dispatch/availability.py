"""Can a target be exported and run on this machine, and if not, why not (its backend, and its requirements)."""

from __future__ import annotations

from dataclasses import dataclass

from edgekit.backends.registry import backend_for_runtime, known_suffixes, supports
from edgekit.catalog.requirements import engine_lacking, lacking
from edgekit.catalog.schema import Target


@dataclass(frozen=True)
class Availability:
    runs_here: bool
    exports_here: bool
    reason: str  # empty when both are true
    # targets with an engine stage (TensorRT): whether this machine builds and runs the engine, and what it lacks
    engine_here: bool | None = None
    engine_reason: str = ""


def availability(target: Target) -> Availability:
    backend = backend_for_runtime(target.runtime)
    has_runner = target.suffix in known_suffixes()  # a TensorRT-ready ONNX runs in ONNX Runtime
    has_route = supports(target.runtime, target.quantization)
    missing, reasons = lacking(target.requires, backend.extra if backend else None)
    if not (has_runner and has_route):
        reasons.append("not built in this version of edgekit")
    elsewhere = backend.cannot_run_here() if backend else None
    if elsewhere:
        reasons.append(elsewhere.split(". ")[0])  # its first sentence: where its files run
    engine_here, engine_reason = None, ""
    if target.engine is not None:
        engine_reasons = engine_lacking(target)
        engine_here = not engine_reasons
        if engine_reasons:
            engine_reason = f"the {target.engine.suffix} engine is built where {target.runtime} runs: " + "; ".join(
                engine_reasons
            )
    return Availability(
        has_runner and not missing and not elsewhere,
        has_route and not missing,
        "; ".join(reasons),
        engine_here,
        engine_reason,
    )
