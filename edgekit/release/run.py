"""`edgekit run PIPELINE.yaml`: a pipeline file runs its exports (edgekit.release.pipeline), or, when a `search:`
section replaces its list of targets, `edgekit search` with the pipeline's source, data, gates (as budgets) and
bundle, so `edgekit run` and CI gate on the best file per device."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgekit.progress import Progress

if TYPE_CHECKING:
    from edgekit.release.pipeline import Pipeline


def run_file(
    path: str | Path,
    progress: Progress,
    *,
    executor: str = "local",
    jobs: int | None = None,
    address: str | None = None,
    cache: str | Path | None = None,
    timeout: float = 30,
) -> dict[str, Any]:
    """Run the pipeline file: its results (see run_pipeline, or run_search_section for a search: section)."""
    from edgekit.errors import UsageError
    from edgekit.release.pipeline import load_sweep, run_pipeline

    path = Path(path)
    combinations = load_sweep(path)
    if combinations[0].pipeline.search is None:
        return run_pipeline(
            path, progress, executor=executor, jobs=jobs, address=address, cache=cache, timeout=timeout,
            combinations=combinations,
        )  # fmt: skip
    if len(combinations) > 1 or combinations[0].name:
        raise UsageError(f"{path}: a matrix cannot sweep a search: (the search varies the settings itself).")
    if address is not None or cache is not None:
        raise UsageError(
            f"{path} searches: --address and --cache apply to pipelines that list their targets.",
            hint="A search keeps its step cache in its output folder (search: {output: DIR}) and runs on this "
            "machine's executors.",
        )
    return run_search_section(path, combinations[0].pipeline, progress, executor, jobs)


def run_search_section(path: Path, pipeline: Pipeline, progress: Progress, executor: str, jobs: int | None) -> dict:
    """Run the pipeline's search; returns {"pipeline", "executor", "search": the search.json document, "report"}.
    Raises GateFailed (with that result) when a device profile has no file within the gates."""
    from edgekit.catalog import local_device
    from edgekit.release.pipeline import GateFailed, data_arg, local_path, source_arg
    from edgekit.release.search import Budgets, NoChoice, search

    spec, gates, base = pipeline.search, pipeline.gates, path.parent
    assert spec is not None and pipeline.evaluate is not None and gates.max_accuracy_drop is not None
    out = Path(local_path(base, spec.output) or spec.output)
    bundle = pipeline.bundle
    budgets = Budgets(gates.max_accuracy_drop, gates.max_p90_ms.get(spec.bench), gates.max_size_mb, spec.max_memory_mb)
    try:
        found = search(
            source_arg(pipeline, base), spec.devices or [local_device().name],
            data_arg(pipeline.evaluate.data, base), out, budgets,
            calib=data_arg(pipeline.calib, base), inputs=tuple(pipeline.inputs),
            weights=local_path(base, pipeline.weights), tokenizer=local_path(base, pipeline.tokenizer),
            targets=tuple(pipeline.targets), strategy=spec.strategy, trials=spec.trials, time_budget=spec.time,
            space_file=local_path(base, spec.space), seed=spec.seed, bench=spec.bench, executor=executor, jobs=jobs,
            bundle=local_path(base, bundle.output) if bundle else None,
            labels=local_path(base, bundle.labels) if bundle else None, progress=progress,
        )  # fmt: skip
    except NoChoice as e:
        said = f"{e.message} {e.hint}" if e.hint else e.message  # the hint names what each closest trial missed
        raise GateFailed(said, _result(path, executor, e.result, out)) from None
    return _result(path, executor, found, out)


def _result(path: Path, executor: str, found: dict[str, Any], out: Path) -> dict[str, Any]:
    return {"pipeline": str(path), "executor": executor, "search": found, "report": str(out / "report.html")}
