"""edgekit: take trained models to edge devices and prove they still work there.

The public API mirrors the CLI, with the same names and options. Importing edgekit imports nothing
heavy: each function imports its backend when called.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from edgekit.bench.harness import Settings
    from edgekit.catalog.schema import Target
    from edgekit.evaluation import EvalReport
    from edgekit.exporter import ExportResult
    from edgekit.progress import Progress
    from edgekit.sources.base import Model
    from edgekit.spec import InputSpecs

T = TypeVar("T")

__version__ = "0.1.0"

# CLI options the messages name -> what a Python caller passes instead (the rest: --foo-bar -> foo_bar=)
_PYTHON_TERMS = {
    "input": "inputs=",
    "eval": "eval_data=",
    "metric": "metrics=",
    "no-fallback": "fallback=False",
    "allow-float-fallback": "allow_float_fallback=True",
    "report-sensitivity": "report_sensitivity=True",
    "unsafe-load": "`with edgekit.unsafe_load():`",
    "threads": "Settings(threads=...)",
    "batch": "Settings(batch=...)",
}
_OPTION = re.compile(r"--([a-z][a-z0-9-]*)(?:[ =]([A-Z][A-Z_:.]*)\b)?")


def _python_terms(text: str | None) -> str | None:
    """An error message as a Python caller reads it: `pass --calib DATA` becomes `pass calib=DATA`."""
    if text is None:
        return None

    def term(m: re.Match) -> str:
        said = _PYTHON_TERMS.get(m[1], m[1].replace("-", "_") + "=")
        return said + (m[2] or "") if said.endswith("=") else said + (f" {m[2]}" if m[2] else "")

    return _OPTION.sub(term, text)


def _api(function: Callable[..., T]) -> Callable[..., T]:
    """The public functions raise edgekit's errors with the options named as Python arguments."""

    @functools.wraps(function)
    def call(*args: Any, **kwargs: Any) -> T:
        from edgekit.errors import EdgekitError

        try:
            return function(*args, **kwargs)
        except EdgekitError as e:
            e.message, e.hint = _python_terms(e.message) or "", _python_terms(e.hint)
            e.args = (e.message, *e.args[1:])
            raise

    return call


# ONNX Runtime 1.32 on Linux has Microsoft's 1DS telemetry built in: on import it writes a device id to
# $TMPDIR/.ses and queues usage events for upload. edgekit talks to no network: this variable, read when
# onnxruntime initializes, turns all of it off in edgekit's process and the benchmark workers it starts (a
# user who wants it sets ORT_DISABLE_TELEMETRY=0).
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")


@_api
def export(
    source: str | Path,
    target: str,
    out_dir: str | Path,
    *,
    calib: str | Path | None = None,
    device: str | None = None,
    inputs: InputSpecs = (),
    weights: str | Path | None = None,
    tokenizer: str | Path | None = None,
    calib_limit: int | None = None,
    allow_float_fallback: bool = False,
    keep_float: tuple[str, ...] = (),
    keep_sensitive: int = 0,
    fallback: bool = True,
    report_sensitivity: bool = False,
    eval_data: str | Path | None = None,
    max_drop: float | None = None,
    options: Mapping[str, Any] | None = None,
    progress: Progress | None = None,
) -> ExportResult:
    """Export `source` to `target` in folder `out_dir`, then gate it: parity against the source on `calib`
    data and, with `eval_data` and `max_drop`, the accuracy drop on labelled data.

    An int8 file that misses the gate gets its most sensitive layers kept float until it passes
    (`fallback=False`: the first failure is final); `keep_float` pins layers (names or globs), `keep_sensitive`
    the N most sensitive ones (measured first).
    `options`: the target's runtime's own settings (`{"fuse": False}` for ONNX Runtime; see `edgekit export
    --help`, where each is a flag); a setting that runtime does not have is refused by name.
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
        fallback=FallbackOptions(fallback, tuple(keep_float), keep_sensitive, report_sensitivity, eval_data, max_drop),
        options=options,
        progress=progress or SILENT,
    )


@_api
def evaluate(
    artifact: str | Path,
    data: str | Path,
    *,
    metrics: tuple[str, ...] = (),
    reference: str | Path | None = None,
    max_drop: float | None = None,
    tokenizer: str | Path | None = None,
    limit: int | None = None,
    reference_inputs: InputSpecs = (),
    reference_weights: str | Path | None = None,
    device: str = "local",
    device_options: Mapping[str, Any] | None = None,
    progress: Progress | None = None,
) -> EvalReport:
    """Task metrics (accuracy, F1, perplexity) of an exported file run in its own runtime, here or on `device`
    (ssh://user@host[:port]; `device_options`: python, identity, options, timeout); with `reference`, compared
    with the source and gated on `max_drop`."""
    from edgekit.evaluation import evaluate as _evaluate
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
        device=device,
        device_options=device_options,
        progress=progress or SILENT,
    )


@_api
def benchmark(
    artifacts: list[str | Path],
    device: str = "local",
    settings: Settings | None = None,
    *,
    tool: str | None = None,
    progress: Progress | None = None,
    **transport_options: Any,
) -> list[dict[str, Any]]:
    """Latency, memory and throughput of each artifact, each repetition in a fresh process on `device`
    ("local", "ssh://user@host", "adb://serial"); returns one run (dict) per artifact, threads and batch.

    Raises BenchmarkError when the device fails part-way (its `runs` holds the repetitions completed before),
    and UsageError for bad input (a missing or unloadable file, settings out of range).
    """
    from edgekit.bench.harness import Settings
    from edgekit.bench.harness import benchmark as _benchmark
    from edgekit.errors import BenchmarkError
    from edgekit.progress import SILENT

    runs, error = _benchmark(
        artifacts, device, settings or Settings(), progress or SILENT, tool=tool, **transport_options
    )
    if error:
        raise BenchmarkError(error, runs)
    return runs


def targets() -> dict[str, Target]:
    """Every target in the catalog, by name."""
    from edgekit.catalog import targets as _targets

    return _targets()


@_api
def load(source: str | Path, inputs: InputSpecs = (), weights: str | Path | None = None) -> Model:
    """Load a source model (ONNX, Keras, TorchScript, ExportedProgram, Hugging Face folder, package.module:factory)."""
    from edgekit.sources import load as _load

    return _load(source, inputs, weights)


@_api
def run(
    pipeline: str | Path,
    *,
    executor: str = "local",
    jobs: int | None = None,
    address: str | None = None,
    cache: str | Path | None = None,
    timeout: float = 30,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Run a pipeline file (every combination of its matrix) as `edgekit run` does: executor "serial",
    "local" (worker processes, `jobs` at once) or "ray" (`address` of a cluster, or a Ray of this machine).
    Returns the results (steps, gates, bundles; per combination under "combinations" for a sweep; a `search:`
    section's search.json document under "search"); raises GateFailed (edgekit.release.pipeline) when a gate
    fails."""
    from edgekit.progress import SILENT
    from edgekit.release.run import run_file

    return run_file(
        pipeline, progress or SILENT, executor=executor, jobs=jobs, address=address, cache=cache, timeout=timeout
    )


@_api
def search(
    source: str,
    data: str,
    out: str | Path,
    *,
    devices: list[str] | None = None,
    max_drop: float = 1.0,
    max_p90_ms: float | None = None,
    max_size_mb: float | None = None,
    max_memory_mb: float | None = None,
    **settings: Any,
) -> dict[str, Any]:
    """Find the best file of `source` for each device profile (default: this machine's), as `edgekit search`
    does: returns the search.json document (every trial, the Pareto front and the choice per device) and
    raises NoChoice (edgekit.release.search) when a device has no file within the budgets. `settings`: calib,
    inputs, weights, tokenizer, targets, space_file, strategy, trials, seed, bench, executor, jobs, bundle, labels,
    progress."""
    from edgekit.catalog import local_device
    from edgekit.release.search import Budgets
    from edgekit.release.search import search as run_search

    budgets = Budgets(max_drop, max_p90_ms, max_size_mb, max_memory_mb)
    return run_search(source, devices or [local_device().name], data, out, budgets, **settings)


@_api
def diff(artifact: str | Path, data: str | Path, *, reference: str | Path | None = None, **settings: Any) -> Any:
    """Every weighted layer of `artifact`, run in its own runtime, against `reference` (its source, or another
    exported file) on `data`, as `edgekit diff` does: returns an edgekit.layerdiff.DiffReport (.first_divergent,
    .layers, .to_json()). `settings`: samples, layers, metric, threshold, atol, rtol, reference_inputs,
    reference_weights, tokenizer, reduce (a folder for the smallest diverging piece), progress."""
    from edgekit.layerdiff import diff as _diff

    return _diff(artifact, data, reference=reference, **settings)


from edgekit.sources.trust import unsafe_load  # noqa: E402  (light: the errors module only)

__all__ = [
    "__version__",
    "benchmark",
    "diff",
    "evaluate",
    "export",
    "load",
    "run",
    "search",
    "targets",
    "unsafe_load",
]
