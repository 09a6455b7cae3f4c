"""edgekit: take trained models to edge devices and prove they still work there.

The public API mirrors the CLI, with the same names and options. Importing edgekit imports nothing
heavy: each function imports its backend when called.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edgekit.bench.harness import Settings
    from edgekit.catalog.schema import Target
    from edgekit.evaluate import EvalReport
    from edgekit.exporter import ExportResult
    from edgekit.progress import Progress
    from edgekit.sources.base import Model
    from edgekit.spec import TensorSpec

__version__ = "0.1.0"


def export(
    source: str | Path,
    target: str,
    out_dir: str | Path,
    *,
    calib: str | Path | None = None,
    device: str | None = None,
    inputs: tuple[TensorSpec, ...] = (),
    weights: str | Path | None = None,
    tokenizer: str | Path | None = None,
    calib_limit: int | None = None,
    allow_float_fallback: bool = False,
    keep_float: tuple[str, ...] = (),
    fallback: bool = True,
    report_sensitivity: bool = False,
    eval_data: str | Path | None = None,
    max_drop: float | None = None,
    progress: Progress | None = None,
) -> ExportResult:
    """Export `source` to `target` in folder `out_dir`, then gate it: parity against the source on `calib`
    data and, with `eval_data` and `max_drop`, the accuracy drop on labelled data.

    An int8 file that misses the gate gets its most sensitive layers kept float until it passes
    (`fallback=False`: the first failure is final); `keep_float` pins layers (names or globs).
    Raises ParityError (the file is kept as *.rejected.*) when the exported file disagrees with its source.
    """
    from edgekit.data import CALIB_LIMIT
    from edgekit.exporter import export as _export
    from edgekit.fallback import FallbackOptions
    from edgekit.progress import SILENT

    return _export(
        source,
        target,
        out_dir,
        calib=calib,
        device=device,
        inputs=inputs,
        weights=weights,
        tokenizer=tokenizer,
        calib_limit=calib_limit or CALIB_LIMIT,
        allow_float_fallback=allow_float_fallback,
        fallback=FallbackOptions(fallback, tuple(keep_float), report_sensitivity, eval_data, max_drop),
        progress=progress or SILENT,
    )


def evaluate(
    artifact: str | Path,
    data: str | Path,
    *,
    metrics: tuple[str, ...] = (),
    reference: str | Path | None = None,
    max_drop: float | None = None,
    tokenizer: str | Path | None = None,
    limit: int | None = None,
    reference_inputs: tuple[TensorSpec, ...] = (),
    reference_weights: str | Path | None = None,
    progress: Progress | None = None,
) -> EvalReport:
    """Task metrics (accuracy, F1, perplexity) of an exported file run in its own runtime; with `reference`,
    compared with the source and gated on `max_drop`."""
    from edgekit.evaluate import evaluate as _evaluate
    from edgekit.progress import SILENT

    return _evaluate(
        artifact,
        data,
        metrics=metrics,
        reference=reference,
        max_drop=max_drop,
        tokenizer=tokenizer,
        limit=limit,
        reference_inputs=reference_inputs,
        reference_weights=reference_weights,
        progress=progress or SILENT,
    )


def benchmark(
    artifacts: list[str | Path],
    device: str = "local",
    settings: Settings | None = None,
    *,
    tool: str | None = None,
    progress: Progress | None = None,
    **transport_options: Any,
) -> tuple[list[dict[str, Any]], str | None]:
    """Latency, memory and throughput, each repetition in a fresh process on `device`; returns (runs, error)."""
    from edgekit.bench.harness import Settings
    from edgekit.bench.harness import benchmark as _benchmark
    from edgekit.progress import SILENT

    return _benchmark(artifacts, device, settings or Settings(), progress or SILENT, tool=tool, **transport_options)


def targets() -> dict[str, Target]:
    """Every target in the catalog, by name."""
    from edgekit.catalog import targets as _targets

    return _targets()


def load(source: str | Path, inputs: tuple[TensorSpec, ...] = (), weights: str | Path | None = None) -> Model:
    """Load a source model (ONNX, Keras, TorchScript, ExportedProgram, Hugging Face folder, package.module:factory)."""
    from edgekit.sources import load as _load

    return _load(source, inputs, weights)


from edgekit.sources.trust import unsafe_load  # noqa: E402  (light: the errors module only)

__all__ = ["__version__", "benchmark", "evaluate", "export", "load", "targets", "unsafe_load"]
