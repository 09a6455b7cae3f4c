"""edgekit run PIPELINE.yaml: source -> targets -> evaluate -> benchmark -> gates -> bundle, declared in one file.

Every step is cached by the content hash of what it reads (the source, weights, calibration and evaluation
data, the artifact it measures, its settings), so a re-run after a change redoes only what the change
touches. The gates (accuracy drop against the source, p90 latency per device, size) decide the exit code.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, overload

from pydantic import BaseModel, ConfigDict, Field, model_validator

from edgekit.errors import EdgekitError, UsageError
from edgekit.progress import SILENT, Progress
from edgekit.yamlfile import line_of, read_yaml, validate

CACHE_DIR = ".edgekit-run"  # beside the pipeline file: one folder per step, named by its key


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EvaluateSpec(_Strict):
    data: str
    metrics: list[str] = Field(default_factory=lambda: ["accuracy", "f1"])


class BenchmarkSpec(_Strict):
    devices: list[str] = Field(default_factory=lambda: ["local"])
    threads: list[int] = Field(default_factory=lambda: [1])
    processes: int = Field(default=3, ge=1)
    min_runs: int = Field(default=50, ge=1)
    min_time: float = Field(default=1.0, ge=0)


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

    method: Literal["prune", "qat", "distill", "vocab"]
    data: str  # training data (text data for vocab)
    val: str | None = None
    epochs: int = Field(default=2, ge=0)
    lr: float = Field(default=1e-3, gt=0)
    batch: int = Field(default=32, ge=1)
    seed: int = 0
    sparsity: float | None = Field(default=None, gt=0, lt=1)  # prune
    prune_method: Literal["magnitude", "structured"] = "magnitude"
    student_layers: int | None = Field(default=None, ge=1)  # distill: the teacher's own layers, evenly spaced
    alpha: float = Field(default=0.5, ge=0, le=1)
    temperature: float = Field(default=2.0, gt=0)

    @model_validator(mode="after")
    def _method_settings(self) -> CompressSpec:
        if self.method == "prune" and self.sparsity is None:
            raise ValueError("method prune needs sparsity (the fraction of weights to remove, e.g. 0.5)")
        if self.method == "distill" and self.student_layers is None:
            raise ValueError("method distill needs student_layers (how many of the teacher's layers)")
        return self


class Pipeline(_Strict):
    source: str
    weights: str | None = None
    inputs: list[str] = Field(default_factory=list)
    tokenizer: str | None = None
    calib: str | None = None
    device: str | None = None
    compress: CompressSpec | None = None
    targets: list[str] = Field(min_length=1)
    evaluate: EvaluateSpec | None = None
    benchmark: BenchmarkSpec | None = None
    gates: Gates = Field(default_factory=Gates)
    bundle: BundleSpec | None = None


def load_pipeline(path: Path) -> Pipeline:
    """The pipeline file, validated: an unknown key, a wrong type, an unknown target or device is an error
    naming the field and its line."""
    data, root = read_yaml(path, "the pipeline")
    if not isinstance(data, dict):
        raise UsageError(f"{path} must be a mapping of pipeline settings (source, targets, ...).")
    pipeline = validate(Pipeline, data, path, root, hint="Pipeline keys: " + ", ".join(Pipeline.model_fields) + ".")
    from edgekit.catalog import get_device, get_target

    for i, target in enumerate(pipeline.targets):
        _named(functools.partial(get_target, target), path, root, ["targets", str(i)])
    if pipeline.device:
        _named(functools.partial(get_device, pipeline.device), path, root, ["device"])
    return pipeline


def _named(check: Callable[[], object], path: Path, root, loc: list[str]) -> None:
    try:
        check()
    except UsageError as e:
        raise UsageError(f"{path}, line {line_of(root, loc)}: {e.message}", hint=e.hint) from None


def run_pipeline(path: str | Path, progress: Progress = SILENT) -> dict[str, Any]:
    """Run the pipeline; returns its results (steps with `cached`, gates with `failures`). Raises GateFailed
    when a gate fails (after the bundle is written, so it can be inspected)."""
    path = Path(path)
    pipeline = load_pipeline(path)
    base = path.parent
    cache = base / CACHE_DIR
    cache.mkdir(exist_ok=True)
    steps: list[dict[str, Any]] = []
    source_hash = _source_hash(pipeline.source, base, _local(base, pipeline.weights))
    tokenizer_hash = _tokenizer_hash(_local(base, pipeline.tokenizer))
    exported = pipeline  # what the exports read: the source, or the compressed model in its place
    if pipeline.compress:
        spec_c = pipeline.compress
        key = _key(
            "compress",
            source_hash,
            spec_c.model_dump(),
            _hash_path(_data_arg(spec_c.data, base)),
            _hash_path(_data_arg(spec_c.val, base)),
            tokenizer_hash,
        )
        record = _step(
            cache,
            key,
            f"compress ({spec_c.method})",
            progress,
            steps,
            functools.partial(_compress, pipeline, base),
        )
        compressed = cache / key / record["model"]
        exported = pipeline.model_copy(update={"source": str(compressed), "weights": None})
        source_hash = key  # the step's key already hashes everything the compressed model came from
    artifacts: dict[str, Path] = {}
    sizes: dict[str, int] = {}  # the artifact with its companions, as the export recorded it
    calib_hash = _hash_path(_data_arg(pipeline.calib, base))
    for target in pipeline.targets:
        key = _key("export", source_hash, target, pipeline.device, pipeline.inputs, calib_hash, tokenizer_hash)
        record = _step(
            cache,
            key,
            f"export {target}",
            progress,
            steps,
            functools.partial(_export, exported, base, target),
        )
        artifacts[target], sizes[target] = cache / key / record["artifact"], record["size_bytes"]
    artifact_hashes = {target: _hash_path(str(artifact)) for target, artifact in artifacts.items()}
    evaluations: dict[str, dict] = {}
    if pipeline.evaluate:
        spec = pipeline.evaluate
        reference = pipeline.gates.max_accuracy_drop is not None
        data_hash = _hash_path(_data_arg(spec.data, base))
        for target, artifact in artifacts.items():
            key = _key(
                "evaluate",
                artifact_hashes[target],
                data_hash,
                spec.metrics,
                reference,
                source_hash if reference else None,
            )
            evaluations[target] = _step(
                cache,
                key,
                f"evaluate {target}",
                progress,
                steps,
                functools.partial(_evaluate, pipeline, base, artifact),
            )
    benchmarks: dict[str, list[dict]] = {}
    if pipeline.benchmark:
        spec_b = pipeline.benchmark
        files = list(artifacts.values())
        for device in spec_b.devices:
            key = _key("benchmark", list(artifact_hashes.values()), device, spec_b.model_dump())
            record = _step(
                cache,
                key,
                f"benchmark on {device}",
                progress,
                steps,
                functools.partial(_benchmark, spec_b, device, files),
            )
            benchmarks[device] = record["runs"]
    failures = _gates(pipeline, sizes, evaluations, benchmarks)
    result: dict[str, Any] = {"pipeline": str(path), "steps": steps, "gates": {"failures": failures}}
    if pipeline.bundle:
        result["bundle"] = _bundle(pipeline, base, artifacts, cache, evaluations, benchmarks, progress)
    (cache / "last-run.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    if failures:
        raise GateFailed("; ".join(failures))
    return result


class GateFailed(EdgekitError):
    """A pipeline gate failed (exit 1): its message names each one."""


def _step(cache: Path, key: str, label: str, progress: Progress, steps: list, run: Callable[[Path], dict]) -> dict:
    """A cached step: its folder holds record.json once it finished; a half-done folder is redone."""
    folder = cache / key
    record_file = folder / "record.json"
    if record_file.is_file():
        progress.info(f"{label}: cached ({key[:12]})")
        record = json.loads(record_file.read_text())
        steps.append({"step": label, "key": key, "cached": True})
        return record
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    with progress.step(label):
        record = run(folder)
    record_file.write_text(json.dumps(record, indent=2, default=str) + "\n")
    steps.append({"step": label, "key": key, "cached": False})
    return record


def _compress(pipeline: Pipeline, base: Path, folder: Path) -> dict:
    """Run the pipeline's compression method into folder/model (a SOURCE folder with its compress.json)."""
    from edgekit import compress
    from edgekit.spec import parse_input_specs

    spec = pipeline.compress
    assert spec is not None
    settings = compress.TrainSettings(spec.epochs, spec.lr, spec.batch, spec.seed)
    common: dict[str, Any] = {
        "val": _data_arg(spec.val, base),
        "inputs": parse_input_specs(tuple(pipeline.inputs)),
    }
    source, data, out = _source_arg(pipeline, base), _data_arg(spec.data, base), folder / "model"
    if spec.method == "prune":
        assert spec.sparsity is not None  # CompressSpec requires it
        compress.prune(
            source,
            data,
            out,
            sparsity=spec.sparsity,
            method=spec.prune_method,
            finetune_epochs=spec.epochs,
            settings=settings,
            weights=_local(base, pipeline.weights),
            **common,
        )
    elif spec.method == "qat":
        compress.qat(source, data, out, settings=settings, weights=_local(base, pipeline.weights), **common)
    elif spec.method == "distill":
        assert spec.student_layers is not None  # CompressSpec requires it
        compress.distill(
            source,
            data,
            out,
            student_layers=spec.student_layers,
            alpha=spec.alpha,
            temperature=spec.temperature,
            settings=settings,
            teacher_weights=_local(base, pipeline.weights),
            tokenizer=_local(base, pipeline.tokenizer),
            **common,
        )
    else:
        compress.prune_vocabulary(source, data, out, **common)
    return {"model": "model", "method": spec.method}


def _export(pipeline: Pipeline, base: Path, target: str, folder: Path) -> dict:
    from edgekit.exporter import export
    from edgekit.spec import parse_input_specs

    result = export(
        _source_arg(pipeline, base),
        target,
        folder,
        calib=_data_arg(pipeline.calib, base),
        device=pipeline.device,
        inputs=parse_input_specs(tuple(pipeline.inputs)),
        weights=_local(base, pipeline.weights),
        tokenizer=_local(base, pipeline.tokenizer),
    )
    return {"artifact": result.artifact.name, "size_bytes": result.size_bytes}


def _evaluate(pipeline: Pipeline, base: Path, artifact: Path, folder: Path) -> dict:
    from edgekit.evaluation import evaluate
    from edgekit.spec import parse_input_specs

    assert pipeline.evaluate is not None
    reference = pipeline.gates.max_accuracy_drop is not None
    report = evaluate(
        artifact,
        _data_arg(pipeline.evaluate.data, base),
        metrics=tuple(pipeline.evaluate.metrics),
        reference=_source_arg(pipeline, base) if reference else None,
        tokenizer=_local(base, pipeline.tokenizer),
        reference_inputs=parse_input_specs(tuple(pipeline.inputs)),
        reference_weights=_local(base, pipeline.weights),
    )
    data = report.to_json()
    (folder / "evaluate.json").write_text(json.dumps(data, indent=2, default=str) + "\n")
    return data


def _benchmark(spec: BenchmarkSpec, device: str, files: list[Path], folder: Path) -> dict:
    from edgekit.bench.harness import Settings, benchmark

    settings = Settings(
        threads=tuple(spec.threads), processes=spec.processes, min_runs=spec.min_runs, min_time=spec.min_time
    )
    paths: list[str | Path] = list(files)
    runs, error = benchmark(paths, device, settings)
    if error:
        raise EdgekitError(f"The benchmark on {device} stopped: {error}")
    for run in runs:
        run.pop("samples_ms", None)
    (folder / "benchmark.json").write_text(json.dumps(runs, indent=2, default=str) + "\n")
    return {"runs": runs}


def _gates(
    pipeline: Pipeline, sizes: dict[str, int], evaluations: dict[str, dict], benchmarks: dict[str, list[dict]]
) -> list[str]:
    gates, failures = pipeline.gates, []
    for target, size in sizes.items():
        size_mb = size / 1e6
        if gates.max_size_mb is not None and size_mb > gates.max_size_mb:
            failures.append(f"{target}: size {size_mb:.2f} MB > max_size_mb {gates.max_size_mb}")
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


def _bundle(pipeline, base, artifacts, cache, evaluations, benchmarks, progress) -> str:
    from edgekit.release.bundle import bundle

    spec = pipeline.bundle
    results = []
    named = [(f"eval-{t}", r) for t, r in evaluations.items()] + [(f"bench-{d}", r) for d, r in benchmarks.items()]
    for name, data in named:
        file = cache / (name.replace("/", "_").replace(":", "_") + ".json")
        file.write_text(json.dumps(data, default=str))
        results.append(file)
    with progress.step(f"bundle ({spec.platform})"):
        made = bundle(
            list(artifacts.values()),
            base / spec.output,
            platform=spec.platform,
            labels=_local(base, spec.labels),
            name=spec.name,
            version=spec.version,
            results=results,
        )
    return str(made.path)


def _source_arg(pipeline: Pipeline, base: Path) -> str:
    """The source as export() takes it: a path relative to the pipeline file, or a package.module:factory."""
    path = base / pipeline.source
    return str(path.resolve()) if path.exists() else pipeline.source


def _local(base: Path, path: str | None) -> str | None:
    """A path the pipeline file names, relative to that file."""
    return str((base / path).resolve()) if path else None


@overload
def _data_arg(data: str, base: Path) -> str: ...
@overload
def _data_arg(data: None, base: Path) -> None: ...
@overload
def _data_arg(data: str | None, base: Path) -> str | None: ...
def _data_arg(data: str | None, base: Path) -> str | None:
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
