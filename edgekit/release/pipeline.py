"""edgekit run PIPELINE.yaml: source -> targets -> evaluate -> benchmark -> gates -> bundle, declared in one file.

Every step is cached by the content hash of what it reads (the source, weights, calibration and evaluation
data, the artifact it measures, its settings), so a re-run after a change redoes only what the change
touches. The gates (accuracy drop against the source, p90 latency per device, size) decide the exit code.
A `matrix:` sweeps settings: every combination of its lists is a pipeline of its own, and steps that two
combinations share run once. The steps form a graph that an executor runs (edgekit.release.executor).
"""

from __future__ import annotations

import copy
import functools
import hashlib
import importlib.util
import itertools
import json
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

from pydantic import BaseModel, ConfigDict, Field, model_validator

from edgekit.errors import EdgekitError, UsageError
from edgekit.progress import SILENT, Progress
from edgekit.release.steps import Job, Step
from edgekit.yamlfile import line_of, read_yaml, validate

if TYPE_CHECKING:
    from edgekit.release.executor import Executor, Outcome

CACHE_DIR = ".edgekit-run"  # beside the pipeline file: one folder per step, named by its key


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EvaluateSpec(_Strict):
    data: str
    metrics: list[str] = Field(default_factory=lambda: ["accuracy", "f1"])
    # with compress: the drop against the source as given (what compression and export lose together), or against
    # the compressed model the files were exported from (what the export alone changed)
    against: Literal["source", "compressed"] = "source"


class SshSpec(_Strict):
    """How to reach the ssh:// benchmark devices (edgekit benchmark's --identity, --python, --ssh-option)."""

    identity: str | None = None  # a key file, relative to the pipeline file
    python: str | None = None  # the device's Python with edgekit's runtimes
    options: list[str] = Field(default_factory=list)


class BenchmarkSpec(_Strict):
    devices: list[str] = Field(default_factory=lambda: ["local"])
    ssh: SshSpec = Field(default_factory=SshSpec)
    threads: list[int] = Field(default_factory=lambda: [1])
    processes: int = Field(default=3, ge=1)
    min_runs: int = Field(default=50, ge=1)
    min_time: float = Field(default=1.0, ge=0)

    @model_validator(mode="after")
    def _devices_once(self) -> BenchmarkSpec:
        twice = sorted({d for d in self.devices if self.devices.count(d) > 1})
        if twice:
            raise ValueError(f"devices lists {', '.join(twice)} more than once")
        return self


class Gates(_Strict):
    max_accuracy_drop: float | None = Field(default=None, ge=0)  # points, against the source, on evaluate.data
    max_p90_ms: dict[str, float] = Field(default_factory=dict)  # per benchmark device
    max_size_mb: float | None = Field(default=None, gt=0)


class BundleSpec(_Strict):
    output: str  # a folder, or FILE.zip
    platform: str = "generic"
    labels: str | None = None
    name: str | None = None
    version: str = "0.0.0"


class CompressSpec(_Strict):
    """A compression step before the exports (edgekit compress): its output becomes the source they export."""

    method: Literal["prune", "lowrank", "qat", "distill", "vocab"]
    data: str  # training data (text data for vocab)
    val: str | None = None
    epochs: int = Field(default=30, ge=0)  # the most; training stops once the validation loss stops improving
    patience: int = Field(default=5, ge=0)  # 0: every epoch runs, no validation split
    val_fraction: float = Field(default=0.1, gt=0, lt=0.5)  # held out of data when val is not given
    lr: float | None = Field(default=None, gt=0)  # None: the method's default
    batch: int = Field(default=32, ge=1)
    seed: int = 0
    sparsity: float | None = Field(default=None, gt=0, lt=1)  # prune
    ramp_epochs: int = Field(default=2, ge=1)  # prune: the sparsity rises over these
    prune_method: Literal["magnitude", "structured"] = "magnitude"
    rank_ratio: float | None = Field(default=None, gt=0, le=1)  # lowrank: the share of each Linear's rank kept
    energy: float | None = Field(default=None, gt=0, le=1)  # lowrank: or the rank keeping this share of energy
    student_layers: int | None = Field(default=None, ge=1)  # distill: the teacher's own layers, evenly spaced
    student_width: float | None = Field(default=None, gt=0, le=1)  # distill: the share of feed-forward units kept
    alpha: float = Field(default=0.5, ge=0, le=1)
    temperature: float = Field(default=2.0, gt=0)

    @model_validator(mode="after")
    def _method_settings(self) -> CompressSpec:
        if self.method == "prune" and self.sparsity is None:
            raise ValueError("method prune needs sparsity (the fraction of weights to remove, e.g. 0.5)")
        if self.method == "lowrank" and (self.rank_ratio is None) == (self.energy is None):
            raise ValueError("method lowrank needs one of rank_ratio (e.g. 0.25) or energy (e.g. 0.9)")
        if self.method == "distill" and self.student_layers is None and self.student_width is None:
            raise ValueError(
                "method distill needs student_layers (how many of the teacher's layers) and/or student_width "
                "(the share of their feed-forward units)"
            )
        return self


class SearchSpec(_Strict):
    """`edgekit search` as the pipeline: evaluate.data is its data, gates are its budgets (max_accuracy_drop
    required), targets (when listed) narrow its space, and bundle receives each device's choice."""

    devices: list[str] = Field(default_factory=list)  # device profiles; default: this machine's
    strategy: Literal["grid", "random", "tpe", "nsga2"] = "grid"
    trials: int | None = Field(default=None, ge=1)  # at most, per device profile
    time: float | None = Field(default=None, gt=0)  # seconds after which no new round of trials starts
    space: str | None = None  # a SPACE.yaml, relative to the pipeline file
    seed: int = 0
    bench: str = "local"  # where trials are benchmarked: local, ssh://USER@HOST, adb://SERIAL
    max_memory_mb: float | None = Field(default=None, gt=0)  # a budget on the bench device's peak memory
    output: str = "search"  # folder for search.json, its cache and each device's choice, relative to the file


class Pipeline(_Strict):
    source: str
    weights: str | None = None
    inputs: list[str] = Field(default_factory=list)
    tokenizer: str | None = None
    calib: str | None = None
    # how many calibration samples an export reads (default: the exporter's limit); `edgekit search` varies it
    calib_samples: int | None = Field(None, ge=1)
    # int8 exports: the N most sensitive layers float from the first attempt (export's --keep-sensitive)
    keep_sensitive: int | None = Field(None, ge=0)
    device: str | None = None
    compress: CompressSpec | None = None
    targets: list[str] = Field(default_factory=list)
    search: SearchSpec | None = None
    evaluate: EvaluateSpec | None = None
    benchmark: BenchmarkSpec | None = None
    gates: Gates = Field(default_factory=Gates)
    bundle: BundleSpec | None = None
    # the runtimes' own export settings, by runtime: {onnxruntime: {fuse: false}} (edgekit export's flags)
    options: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _targets_or_search(self) -> Pipeline:
        if self.search is None and not self.targets:
            raise ValueError("targets must list at least one target (or add a search: section, which tries them)")
        if self.search is not None:
            if self.evaluate is None or self.gates.max_accuracy_drop is None:
                raise ValueError("a search: needs evaluate: {data: ...} and gates: {max_accuracy_drop: ...}")
            if self.compress is not None:
                raise ValueError("a search: does not run compress: (its space file's compression: tries them)")
        return self

    def options_for(self, target: str) -> dict[str, Any]:
        from edgekit.catalog import get_target

        return self.options.get(get_target(target).runtime, {})


@dataclass(frozen=True)
class Combination:
    """One point of a sweep: its readable name ("" without a matrix), the matrix values, its pipeline."""

    name: str
    settings: dict[str, Any]
    pipeline: Pipeline


_SECTIONS: dict[str, type[BaseModel]] = {  # the sections whose settings a matrix may vary one by one
    "compress": CompressSpec,
    "evaluate": EvaluateSpec,
    "benchmark": BenchmarkSpec,
    "gates": Gates,
    "bundle": BundleSpec,
}


def load_pipeline(path: Path) -> Pipeline:
    """The pipeline file, validated (its first combination, when it sweeps a matrix)."""
    return load_sweep(path)[0].pipeline


def load_sweep(path: Path) -> list[Combination]:
    """The pipeline file, validated, one pipeline per combination of its `matrix:`: an unknown key, a wrong
    type, an unknown target or device is an error naming the field and its line."""
    data, root = read_yaml(path, "the pipeline")
    if not isinstance(data, dict):
        raise UsageError(f"{path} must be a mapping of pipeline settings (source, targets, ...).")
    matrix = data.pop("matrix", None)
    combinations = []
    for settings in _expand(matrix, path, root):
        combined = copy.deepcopy(data)
        for key, value in settings.items():
            *sections, name = key.split(".")
            into = combined
            for section in sections:  # compress.sparsity; options.onnxruntime.fuse
                into = into.setdefault(section, {})
                if not isinstance(into, dict):
                    break
            else:
                into[name] = value
        name = ", ".join(f"{k}={_shown(v)}" for k, v in settings.items())
        try:
            pipeline = _validated(combined, path, root)
        except UsageError as e:
            raise _blamed(e, name, data, path, root) from None
        combinations.append(Combination(name, settings, pipeline))
    return combinations


def _blamed(error: UsageError, name: str, data: dict, path: Path, root: Any) -> UsageError:
    """A combination's error, pointing at the matrix when its values (not the rest of the file) caused it."""
    if not name:
        return error
    try:
        _validated(data, path, root)
    except UsageError as base:
        if base.message == error.message:
            return error  # the file is wrong whatever the matrix says
    said = re.sub(rf"^{re.escape(str(path))}, line \d+: ", "", error.message)
    return UsageError(f"{path}, line {line_of(root, ['matrix'])}: matrix combination {name}: {said}", hint=error.hint)


def _validated(data: dict, path: Path, root: Any) -> Pipeline:
    keys = ", ".join([*Pipeline.model_fields, "matrix"])
    pipeline = validate(Pipeline, data, path, root, hint=f"Pipeline keys: {keys}.")
    from edgekit.catalog import get_device, get_target

    for i, target in enumerate(pipeline.targets):
        _named(functools.partial(get_target, target), path, root, ["targets", str(i)])
    for runtime in pipeline.options:
        _named(functools.partial(_runtime_options, pipeline, runtime), path, root, ["options", runtime])
    if pipeline.device:
        _named(functools.partial(get_device, pipeline.device), path, root, ["device"])
    for i, device in enumerate(pipeline.search.devices if pipeline.search else []):
        _named(functools.partial(get_device, device), path, root, ["search", "devices", str(i)])
    return pipeline


def _runtime_options(pipeline: Pipeline, runtime: str) -> None:
    """A runtime's options are checked against its backend's options model, for each target on it."""
    from edgekit.backends.registry import backend_for_runtime, backends, resolve_options
    from edgekit.catalog import get_target

    backend = backend_for_runtime(runtime)
    if backend is None:
        raise UsageError(f"options: '{runtime}' is not a runtime.", hint=f"Runtimes: {', '.join(backends())}.")
    on_it = [t for t in pipeline.targets if get_target(t).runtime == runtime]
    resolve_options(backend, pipeline.options[runtime], on_it[0] if on_it else f"any {runtime} target")


def _expand(matrix: Any, path: Path, root: Any) -> list[dict[str, Any]]:
    """The product of the matrix's lists: one dict of settings per combination ([{}] without a matrix)."""
    if matrix is None:
        return [{}]
    where = f"{path}, line {line_of(root, ['matrix'])}"
    if not isinstance(matrix, dict) or not matrix:
        example = "matrix: {calib: [a.npz, b.npz]}"
        raise UsageError(f"{where}: matrix must map pipeline keys to lists of values, e.g. {example}.")
    for key, values in matrix.items():
        where = f"{path}, line {line_of(root, ['matrix', str(key)])}"
        section, _, name = str(key).partition(".")
        fields: Collection[str] = (
            _SECTIONS[section].model_fields if name and section in _SECTIONS else Pipeline.model_fields
        )
        if section == "options":
            fields = _option_keys()
        if section in ("targets", "matrix") or section not in Pipeline.model_fields or (name and name not in fields):
            known = [k for k in Pipeline.model_fields if k not in ("targets", "options", *_SECTIONS)]
            known += [f"{s}.{f}" for s, spec in _SECTIONS.items() for f in spec.model_fields]
            known += [f"options.{k}" for k in _option_keys()]
            raise UsageError(
                f"{where}: matrix key '{key}' is not a pipeline setting.",
                hint=f"A matrix varies any of: {', '.join(known)}. List targets in targets: (every combination "
                "exports each).",
            )
        if not isinstance(values, list) or not values:
            raise UsageError(f"{where}: matrix key '{key}' must list at least one value, e.g. {key}: [a, b].")
    keys = list(matrix)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*(matrix[k] for k in keys))]


def _option_keys() -> list[str]:
    """RUNTIME.OPTION for every backend option: what `options.RUNTIME.OPTION` in a matrix may vary."""
    from edgekit.backends.registry import backends

    return [f"{runtime}.{name}" for runtime, b in backends().items() for name in b.options.model_fields]


def _shown(value: Any) -> str:
    """A matrix value as a combination's name shows it: a path by its file name."""
    text = json.dumps(value) if not isinstance(value, str) else value
    return Path(text).name if "/" in text and ":" not in text else text


def _named(check: Callable[[], object], path: Path, root, loc: list[str]) -> None:
    try:
        check()
    except UsageError as e:
        raise UsageError(f"{path}, line {line_of(root, loc)}: {e.message}", hint=e.hint) from None


def run_pipeline(
    path: str | Path,
    progress: Progress = SILENT,
    *,
    executor: str = "local",
    jobs: int | None = None,
    address: str | None = None,
    cache: str | Path | None = None,
    timeout: float = 30,
    combinations: list[Combination] | None = None,
) -> dict[str, Any]:
    """Run the pipeline (every combination of its matrix) on `executor`; returns its results (steps with
    `cached`, gates with `failures`, per combination under `combinations` for a sweep). Raises GateFailed when
    a gate fails (after the bundles are written, so they can be inspected). `combinations`: the file as
    load_sweep already read it."""
    path = Path(path)
    combinations = combinations or load_sweep(path)
    base = path.parent
    if combinations[0].pipeline.search is not None:
        raise UsageError(f"{path} searches: run it with edgekit.release.run.run_file, which runs either kind.")
    folder = Path(cache).resolve() if cache else base / CACHE_DIR
    plans, outcome = execute_combinations(combinations, base, folder, progress, executor, jobs, address, timeout)
    if outcome.errors:
        (folder / "last-run.json").write_text(json.dumps(_failed(outcome), indent=2, default=str) + "\n")
        raise _step_failure(outcome.errors)
    results = [plan.finish(outcome, progress) for plan in plans]
    result: dict[str, Any] = {"pipeline": str(path), "executor": executor, "steps": outcome.steps}
    if len(results) == 1 and not combinations[0].name:
        result.update(results[0])
        failures = results[0]["gates"]["failures"]
    else:
        result["combinations"] = results
        failures = [f"{r['name']}: {f}" for r in results for f in r["gates"]["failures"]]
        result["gates"] = {"failures": failures}
    (folder / "last-run.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    from edgekit.release.report import write_report

    report = write_report([folder / "last-run.json"], folder / "report.html", f"edgekit run {path.name}")
    result["report"] = str(report)
    if failures:
        raise GateFailed("; ".join(failures), result)
    return result


def execute_combinations(
    combinations: list[Combination],
    base: Path,
    folder: Path,
    progress: Progress,
    executor: str = "local",
    jobs: int | None = None,
    address: str | None = None,
    timeout: float = 30,
    runner: Executor | None = None,
) -> tuple[list[_Plan], Outcome]:
    """Run the steps of every combination on `executor` with the step cache in `folder` (paths relative to
    `base`); a failed step skips the steps that need it and the others go on. Returns each combination's plan
    and what running them gave. `runner`: an executor already started, left open for the caller's next run."""
    from edgekit.release.executor import execute, make_executor

    folder.mkdir(parents=True, exist_ok=True)
    plans = [_Plan(c, base, folder) for c in combinations]
    steps = [step for plan in plans for step in plan.steps()]
    if runner is not None:
        return plans, execute(steps, folder, runner, progress, close=False)
    devices = sorted({d for c in combinations if c.pipeline.benchmark for d in c.pipeline.benchmark.devices})
    runner = make_executor(executor, jobs, address, timeout, devices)
    if getattr(runner, "dashboard", None):
        progress.info(f"Ray dashboard: {runner.dashboard}")  # type: ignore[attr-defined]
    return plans, execute(steps, folder, runner, progress)


def _planned(job: Job, records: dict[str, dict]) -> Job:
    """The plan of a step that depends on no other: its job is known before anything runs."""
    return job


def _public(record: dict) -> dict:
    """A step's record without the cache's bookkeeping (its key, times and file hashes)."""
    return {k: v for k, v in record.items() if not k.startswith("_")}


def _failed(outcome) -> dict:
    return {"steps": outcome.steps, "errors": {s: str(e) for s, e in outcome.errors.items()}}


def _step_failure(errors: dict[str, BaseException]) -> BaseException:
    """The error a failed run raises: a single step's own error, or one naming every step that failed."""
    from edgekit.release.executor import StepSkipped

    failed = {s: e for s, e in errors.items() if not isinstance(e, StepSkipped)}
    if len(failed) == 1:
        return next(iter(failed.values()))
    lines = "; ".join(f"{s}: {getattr(e, 'message', e)}" for s, e in failed.items())
    return EdgekitError(f"{len(failed)} steps failed: {lines}")


class GateFailed(EdgekitError):
    """A pipeline gate failed (exit 1): its message names each one; `result` holds the run's results."""

    def __init__(self, message: str, result: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.result = result or {}


class _Plan:
    """The steps of one combination and, once they ran, its gates and bundle."""

    def __init__(self, combination: Combination, base: Path, cache: Path) -> None:
        self.combination, self.base, self.cache = combination, base, cache
        self.pipeline = combination.pipeline
        self.prefix = f"[{combination.name}] " if combination.name else ""

    def steps(self) -> list[Step]:
        pipeline, base = self.pipeline, self.base
        source_hash = original_hash = _source_hash(pipeline.source, base, local_path(base, pipeline.weights))
        tokenizer_hash = _tokenizer_hash(local_path(base, pipeline.tokenizer))
        steps: list[Step] = []
        compress_id = None
        if pipeline.compress:
            spec_c = pipeline.compress
            compress_key = _key(
                "compress",
                source_hash,
                spec_c.model_dump(),
                _hash_path(data_arg(spec_c.data, base)),
                _hash_path(data_arg(spec_c.val, base)),
                tokenizer_hash,
            )
            compress_id = self.prefix + f"compress ({spec_c.method})"
            job = Job(compress_key, functools.partial(_compress, pipeline, base))
            steps.append(Step(compress_id, (), functools.partial(_planned, job)))
            source_hash = compress_key  # the step's key already hashes everything the compressed model came from
        calib_hash = _hash_path(data_arg(pipeline.calib, base))
        self.export_ids = {t: self.prefix + f"export {t}" for t in pipeline.targets}
        for target, step_id in self.export_ids.items():
            key = _key(
                "export",
                source_hash,
                target,
                pipeline.device,
                pipeline.inputs,
                calib_hash,
                tokenizer_hash,
                pipeline.options_for(target),
                *((pipeline.calib_samples,) if pipeline.calib_samples else ()),  # keys without it stay as they were
                *((("keep_sensitive", pipeline.keep_sensitive),) if pipeline.keep_sensitive else ()),
            )
            steps.append(Step(step_id, (compress_id,) if compress_id else (), functools.partial(
                self._export_job, key, target, compress_id)))  # fmt: skip
        self.evaluate_ids: dict[str, str] = {}
        if pipeline.evaluate:
            data_hash = _hash_path(data_arg(pipeline.evaluate.data, base))
            against_source = pipeline.evaluate.against == "source"
            reference_hash = original_hash if against_source else source_hash
            reference_id = None if against_source else compress_id
            for target, export_id in self.export_ids.items():
                self.evaluate_ids[target] = self.prefix + f"evaluate {target}"
                plan = functools.partial(self._evaluate_job, target, data_hash, reference_hash, reference_id)
                deps = (export_id, compress_id) if compress_id else (export_id,)
                steps.append(Step(self.evaluate_ids[target], deps, plan))
        self.benchmark_ids: dict[str, str] = {}
        if pipeline.benchmark:
            for device in pipeline.benchmark.devices:
                self.benchmark_ids[device] = self.prefix + f"benchmark on {device}"
                steps.append(Step(self.benchmark_ids[device], tuple(self.export_ids.values()),
                                  functools.partial(self._benchmark_job, device)))  # fmt: skip
        self.ids = {step.id for step in steps}
        return steps

    def _source(self, records: dict[str, dict], compress_id: str | None) -> Pipeline:
        """What the exports read: the source, or the compressed model in its place."""
        if compress_id is None:
            return self.pipeline
        compressed = self.cache / records[compress_id]["_key"] / records[compress_id]["model"]
        return self.pipeline.model_copy(update={"source": str(compressed), "weights": None})

    def _export_job(self, key: str, target: str, compress_id: str | None, records: dict[str, dict]) -> Job:
        source = self._source(records, compress_id)
        return Job(key, functools.partial(_export, source, self.base, target))

    def _artifact(self, record: dict) -> Path:
        return self.cache / record["_key"] / record["artifact"]

    def _evaluate_job(
        self, target: str, data_hash: str | None, source_hash: str, compress_id: str | None, records: dict
    ) -> Job:
        """The file's evaluation, against `compress_id`'s model (the compressed one) or, None, the source."""
        artifact = self._artifact(records[self.export_ids[target]])
        assert self.pipeline.evaluate is not None
        reference = self.pipeline.gates.max_accuracy_drop is not None
        key = _key(
            "evaluate",
            _hash_path(str(artifact)),
            data_hash,
            self.pipeline.evaluate.metrics,
            reference,
            source_hash if reference else None,
        )
        return Job(key, functools.partial(_evaluate, self._source(records, compress_id), self.base, artifact))

    def _benchmark_job(self, device: str, records: dict[str, dict]) -> Job:
        spec = self.pipeline.benchmark
        assert spec is not None
        files = [self._artifact(records[i]) for i in self.export_ids.values()]
        key = _key("benchmark", [_hash_path(str(f)) for f in files], device, spec.model_dump())
        work = functools.partial(_benchmark, spec, self.base, device, files)
        return Job(key, work, device=device, exclusive=device == "local")

    def finish(self, outcome, progress: Progress) -> dict[str, Any]:
        """Gates and bundle of this combination, from the records of its steps."""
        records = outcome.records
        artifacts = {t: self._artifact(records[i]) for t, i in self.export_ids.items()}
        sizes = {t: records[i]["size_bytes"] for t, i in self.export_ids.items()}
        evaluations = {t: _public(records[i]) for t, i in self.evaluate_ids.items()}
        benchmarks = {d: records[i]["runs"] for d, i in self.benchmark_ids.items()}
        steps = [s for s in outcome.steps if s["step"] in self.ids]
        failures = _gates(self.pipeline, sizes, evaluations, benchmarks)
        files = _figures(artifacts, sizes, evaluations, benchmarks, failures)
        result: dict[str, Any] = {"steps": steps, "targets": files, "gates": {"failures": failures}}
        if self.combination.name:
            result = {"name": self.combination.name, "settings": self.combination.settings, **result}
        if self.pipeline.bundle:
            result["bundle"] = _bundle(self, artifacts, evaluations, benchmarks, progress)
        return result


def _figures(artifacts: dict, sizes: dict, evaluations: dict, benchmarks: dict, failures: list[str]) -> dict:
    """Per target, what the results table and report show: size, accuracy and its drop, p50/p90 per device,
    and the gates it failed (named by its target, or by its file for a latency gate)."""
    figures = {}
    for target, artifact in artifacts.items():
        report = evaluations.get(target) or {}
        # each device's run of this file (of several thread counts, the first one's)
        runs = {d: r for d, rs in benchmarks.items() for r in rs[::-1] if Path(r["artifact"]).name == artifact.name}
        metrics = report.get("metrics") or {}
        figures[target] = {
            "size_bytes": sizes[target],
            "accuracy": metrics.get("accuracy"),
            "f1_macro": metrics.get("f1_macro"),
            "accuracy_drop_pts": (report.get("drop") or {}).get("accuracy"),
            "p50_ms": {d: r["latency_ms"].get("p50") for d, r in runs.items()},
            "p90_ms": {d: r["latency_ms"].get("p90") for d, r in runs.items()},
            "peak_rss_mb": {d: r.get("peak_rss_mb") for d, r in runs.items()},
            "gate_failures": [f for f in failures if f.startswith((f"{target}: ", f"{artifact.name} on "))],
        }
    return figures


def _compress(pipeline: Pipeline, base: Path, folder: Path) -> dict:
    """Run the pipeline's compression method into folder/model (a SOURCE folder with its compress.json)."""
    from edgekit import compress
    from edgekit.spec import parse_input_specs

    spec = pipeline.compress
    assert spec is not None
    settings = compress.TrainSettings(spec.epochs, spec.lr, spec.batch, spec.seed, spec.patience, spec.val_fraction)
    common: dict[str, Any] = {
        "val": data_arg(spec.val, base),
        "inputs": parse_input_specs(tuple(pipeline.inputs)),
    }
    source, data, out = source_arg(pipeline, base), data_arg(spec.data, base), folder / "model"
    if spec.method == "prune":
        assert spec.sparsity is not None  # CompressSpec requires it
        compress.prune(
            source,
            data,
            out,
            sparsity=spec.sparsity,
            method=spec.prune_method,
            finetune_epochs=spec.epochs,
            ramp_epochs=spec.ramp_epochs,
            settings=settings,
            weights=local_path(base, pipeline.weights),
            **common,
        )
    elif spec.method == "lowrank":
        compress.lowrank(
            source,
            data,
            out,
            rank_ratio=spec.rank_ratio,
            energy=spec.energy,
            finetune_epochs=spec.epochs,
            settings=settings,
            weights=local_path(base, pipeline.weights),
            **common,
        )
    elif spec.method == "qat":
        compress.qat(source, data, out, settings=settings, weights=local_path(base, pipeline.weights), **common)
    elif spec.method == "distill":
        compress.distill(
            source,
            data,
            out,
            student_layers=spec.student_layers,
            student_width=spec.student_width,
            alpha=spec.alpha,
            temperature=spec.temperature,
            settings=settings,
            teacher_weights=local_path(base, pipeline.weights),
            tokenizer=local_path(base, pipeline.tokenizer),
            **common,
        )
    else:
        compress.prune_vocabulary(source, data, out, **common)
    return {"model": "model", "method": spec.method}


def _export(pipeline: Pipeline, base: Path, target: str, folder: Path) -> dict:
    from edgekit.data import CALIB_LIMIT
    from edgekit.exporter import export
    from edgekit.fallback import FallbackOptions
    from edgekit.spec import parse_input_specs

    result = export(
        source_arg(pipeline, base),
        target,
        folder,
        calib=data_arg(pipeline.calib, base),
        device=pipeline.device,
        inputs=parse_input_specs(tuple(pipeline.inputs)),
        weights=local_path(base, pipeline.weights),
        tokenizer=local_path(base, pipeline.tokenizer),
        options=pipeline.options_for(target),
        calib_limit=pipeline.calib_samples or CALIB_LIMIT,
        fallback=FallbackOptions(keep_sensitive=pipeline.keep_sensitive or 0),
    )
    return {"artifact": result.artifact.name, "size_bytes": result.size_bytes}


def _evaluate(pipeline: Pipeline, base: Path, artifact: Path, folder: Path) -> dict:
    from edgekit.evaluation import evaluate
    from edgekit.spec import parse_input_specs

    assert pipeline.evaluate is not None
    reference = pipeline.gates.max_accuracy_drop is not None
    report = evaluate(
        artifact,
        data_arg(pipeline.evaluate.data, base),
        metrics=tuple(pipeline.evaluate.metrics),
        reference=source_arg(pipeline, base) if reference else None,
        tokenizer=local_path(base, pipeline.tokenizer),
        reference_inputs=parse_input_specs(tuple(pipeline.inputs)),
        reference_weights=local_path(base, pipeline.weights),
    )
    data = report.to_json()
    (folder / "evaluate.json").write_text(json.dumps(data, indent=2, default=str) + "\n")
    return data


def _benchmark(spec: BenchmarkSpec, base: Path, device: str, files: list[Path], folder: Path) -> dict:
    from edgekit.bench.harness import Settings, benchmark

    settings = Settings(
        threads=tuple(spec.threads), processes=spec.processes, min_runs=spec.min_runs, min_time=spec.min_time
    )
    paths: list[str | Path] = list(files)
    ssh = spec.ssh
    reach: dict[str, Any] = {
        "identity": local_path(base, ssh.identity),
        "python": ssh.python,
        "options": tuple(ssh.options),
    }
    runs, error = benchmark(paths, device, settings, **(reach if device.startswith("ssh://") else {}))
    if error:
        raise EdgekitError(f"The benchmark on {device} stopped: {error}")
    for run in runs:
        run.pop("samples_ms", None)
    (folder / "benchmark.json").write_text(json.dumps(runs, indent=2, default=str) + "\n")
    return {"runs": runs}


def size_over(target: str, size_bytes: int, max_size_mb: float | None) -> str | None:
    """The size gate's failure for a file, or None when it fits (or there is no gate)."""
    size_mb = size_bytes / 1e6
    if max_size_mb is None or size_mb <= max_size_mb:
        return None
    return f"{target}: size {size_mb:.2f} MB > max_size_mb {max_size_mb}"


def _gates(
    pipeline: Pipeline, sizes: dict[str, int], evaluations: dict[str, dict], benchmarks: dict[str, list[dict]]
) -> list[str]:
    gates, failures = pipeline.gates, []
    for target, size in sizes.items():
        over = size_over(target, size, gates.max_size_mb)
        if over:
            failures.append(over)
        report = evaluations.get(target)
        if gates.max_accuracy_drop is not None and report is not None:
            drops = {k: v for k, v in (report.get("drop") or {}).items() if k in ("accuracy", "f1_macro")}
            for metric, drop in drops.items():
                if drop > gates.max_accuracy_drop:
                    failures.append(
                        f"{target}: {metric} drop {drop:.2f} pts > max_accuracy_drop {gates.max_accuracy_drop}"
                    )
    for device, limit in gates.max_p90_ms.items():
        runs = benchmarks.get(device)
        if runs is None:
            failures.append(f"max_p90_ms names device {device}, which the pipeline does not benchmark on")
            continue
        for run in runs:
            p90 = run["latency_ms"].get("p90")
            if p90 is not None and p90 > limit:
                failures.append(f"{Path(run['artifact']).name} on {device}: p90 {p90:.3f} ms > max_p90_ms {limit}")
    return failures


def _bundle(plan: _Plan, artifacts: dict, evaluations: dict, benchmarks: dict, progress: Progress) -> str:
    """The combination's bundle, with its evaluation and benchmark results; a sweep puts each combination's
    bundle in a folder (or zip) named after it."""
    import tempfile

    from rich.markup import escape

    from edgekit.release.bundle import bundle

    spec = plan.pipeline.bundle
    assert spec is not None
    output = plan.base / spec.output
    if plan.combination.name:
        slug = re.sub(r"[^A-Za-z0-9._=-]+", "_", plan.combination.name)
        output = output.with_name(f"{output.stem}-{slug}.zip") if output.suffix == ".zip" else output / slug
    named = [(f"eval-{t}", r) for t, r in evaluations.items()] + [(f"bench-{d}", r) for d, r in benchmarks.items()]
    with tempfile.TemporaryDirectory() as tmp, progress.step(f"{escape(plan.prefix)}bundle ({spec.platform})"):
        results: list[str | Path] = []
        for name, data in named:
            file = Path(tmp) / (name.replace("/", "_").replace(":", "_") + ".json")
            file.write_text(json.dumps(data, default=str))
            results.append(file)
        made = bundle(
            list(artifacts.values()),
            output,
            platform=spec.platform,
            labels=local_path(plan.base, spec.labels),
            name=spec.name,
            version=spec.version,
            results=results,
        )
    return str(made.path)


def source_arg(pipeline: Pipeline, base: Path) -> str:
    """The source as export() takes it: a path relative to the pipeline file, or a package.module:factory."""
    path = base / pipeline.source
    return str(path.resolve()) if path.exists() else pipeline.source


def local_path(base: Path, path: str | None) -> str | None:
    """A path the pipeline file names, relative to that file (or to the home folder: ~/...)."""
    return str((base / Path(path).expanduser()).resolve()) if path else None


@overload
def data_arg(data: str, base: Path) -> str: ...
@overload
def data_arg(data: None, base: Path) -> None: ...
@overload
def data_arg(data: str | None, base: Path) -> str | None: ...
def data_arg(data: str | None, base: Path) -> str | None:
    """DATA relative to the pipeline file, or a built-in dataset (builtin:tweets:test)."""
    return data if data is None or data.startswith("builtin:") else str((base / data).resolve())


def _key(*parts: Any) -> str:
    """A step's cache key: its inputs' hashes and settings, and the edgekit version that produced it."""
    from edgekit import __version__

    return hashlib.sha256(json.dumps([__version__, *parts], sort_keys=True, default=str).encode()).hexdigest()[:32]


def _hash_path(path: str | None) -> str | None:
    """A file's sha256, or a folder's over its files (names and contents); None for no path."""
    from edgekit.checksum import sha256_path

    if path is None:
        return None
    p = Path(path)
    if not p.exists():
        if path.startswith("builtin:"):
            return path  # a built-in dataset is part of the installed package
        raise UsageError(f"The pipeline names {p}, which does not exist.")
    return sha256_path(p)


def _tokenizer_hash(path: str | None) -> str | None:
    """The tokenizer files of a tokenizer folder only (it may hold the model's weights too)."""
    from edgekit.data import TOKENIZER_FILES

    if path is None:
        return None
    folder = Path(path)
    return _key(*(_hash_path(str(folder / f)) for f in TOKENIZER_FILES if (folder / f).is_file()))


def _source_hash(source: str, base: Path, weights: str | None) -> str:
    """What the source is made of: the file or folder, or a factory's module file; with its weights."""
    if (base / source).exists():
        return _key(_hash_path(str((base / source).resolve())), _hash_path(weights))
    module = source.split(":")[0]
    spec = importlib.util.find_spec(module) if ":" in source else None
    if spec is None or not spec.origin:
        raise UsageError(
            f"The pipeline's source '{source}' is neither a file nor an importable package.module:factory."
        )
    return _key(source, _hash_path(spec.origin), _hash_path(weights))
