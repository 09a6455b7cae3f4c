"""edgekit bundle: exported files laid out as an app's assets, with a manifest.json of checksums, tensors,
preprocessing, results and provenance. The same inputs give byte-identical output; nothing half-written."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.checksum import sha256_path
from edgekit.data import TOKENIZER_FILES
from edgekit.dispatch import artifact_files, require_artifact
from edgekit.errors import UsageError, require_file
from edgekit.release.manifest import (
    MANIFEST_FILE,
    FileEntry,
    Generation,
    Manifest,
    ModelEntry,
    Preprocessing,
    Provenance,
    Tensor,
)
from edgekit.sidecar import Sidecar, read_sidecar


@dataclass(frozen=True)
class Layout:
    """Where a platform's app build takes assets from (which runtimes its apps embed, the backends say)."""

    root: str  # the bundle's top folder, from the bundle name
    where: str  # what to do with the folder, for the message after bundling


PLATFORMS = {
    "android": Layout("{name}", "copy the folder under app/src/main/assets/"),
    "ios": Layout("{name}.bundle", "add the folder to the app target as a resource bundle"),
    "generic": Layout("{name}", "ship the folder as it is"),
}


def embedded_runtimes(platform: str) -> list[str]:
    """The runtimes `platform`'s apps embed, as the backends declare them (none named: any runtime goes)."""
    from edgekit.backends.registry import backends

    return [b.runtime for b in backends().values() if platform in b.app_platforms]


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest a zip can say: a fixed timestamp makes the archive reproducible


@dataclass(frozen=True)
class BundleResult:
    path: Path  # the bundle folder, or the .zip
    manifest: Manifest
    where: str


def bundle(
    artifacts: list[str | Path],
    out: str | Path,
    *,
    platform: str = "generic",
    labels: str | Path | None = None,
    name: str | None = None,
    version: str = "0.0.0",
    results: list[str | Path] = (),  # type: ignore[assignment]
) -> BundleResult:
    """Lay out `artifacts` (edgekit exports, with their sidecars) for `platform` in folder `out`, or in `out`
    when it ends in .zip. `results`: `edgekit evaluate --json` and `edgekit benchmark --json` files; each
    result goes to the model whose file it names."""
    if platform not in PLATFORMS:
        raise UsageError(f"Unknown platform '{platform}'.", hint=f"Platforms: {', '.join(PLATFORMS)}.")
    layout = PLATFORMS[platform]
    models = [_read_artifact(Path(a), platform) for a in artifacts]
    if not models:
        raise UsageError("Give at least one exported artifact to bundle.")
    name = name or _model_name(*models[0])
    for what, value in (("--name", name), ("--version", version)):
        if not _NAME.match(value):
            raise UsageError(f"{what} '{value}' must be a plain file name (letters, digits, '.', '_', '-').")
    labels_path = require_file(Path(labels), "--labels") if labels else None
    evaluations, benchmarks = _read_results([Path(r) for r in results], [path.name for path, _ in models])
    out = Path(out)
    zipped = out.suffix == ".zip"
    parent = out.parent if zipped else out
    if zipped and out.is_dir():
        raise UsageError(f"-o {out} is a folder; a bundle archive needs a file name ending in .zip.")
    parent.mkdir(parents=True, exist_ok=True)
    root = layout.root.format(name=name)
    with tempfile.TemporaryDirectory(prefix=".edgekit-bundle-", dir=parent) as tmp:
        staged = Path(tmp) / root
        manifest = _stage(staged, models, name, version, platform, labels_path, evaluations, benchmarks)
        if zipped:
            archive = Path(tmp) / "bundle.zip"
            _zip(staged, archive, root)
            os.replace(archive, out)
            return BundleResult(out, manifest, layout.where)
        final = out / root
        if final.exists():  # replace a previous bundle: the old one moves aside, then goes
            old = Path(tmp) / "previous"
            os.replace(final, old)
        os.replace(staged, final)
    return BundleResult(final, manifest, layout.where)


def _generation(path: Path) -> Generation | None:
    """A generating model's facts for the manifest, as its backend reads them from the file (None: not an LM)."""
    from edgekit.backends.registry import backend_for_file

    describe = backend_for_file(path).describe_generation
    return Generation.model_validate(describe(path)) if describe else None


def _read_artifact(path: Path, platform: str) -> tuple[Path, Sidecar]:
    require_artifact(path)
    sidecar = read_sidecar(path)
    if sidecar is None:
        raise UsageError(
            f"{path} has no sidecar ({path.stem}.edgekit.json): a bundle describes files edgekit exported.",
            hint="Export it with edgekit export, and keep the sidecar beside the file.",
        )
    embedded = embedded_runtimes(platform)
    if embedded and sidecar.runtime not in embedded:
        raise UsageError(
            f"{path.name} is a {sidecar.runtime} file; {platform} apps embed {', '.join(embedded)} runtimes.",
            hint="Bundle it with --platform generic, or export a mobile target (edgekit targets).",
        )
    return path, sidecar


def _model_name(path: Path, sidecar: Sidecar) -> str:
    suffix = f"-{sidecar.target}"
    return path.stem[: -len(suffix)] if path.stem.endswith(suffix) else path.stem


def _read_results(files: list[Path], names: list[str]) -> tuple[dict[str, list], dict[str, list]]:
    """evaluate/benchmark --json files, sorted to the artifacts they name; one naming none is an error."""
    evaluations: dict[str, list] = {n: [] for n in names}
    benchmarks: dict[str, list] = {n: [] for n in names}
    for file in files:
        try:
            data = json.loads(file.read_text())
        except (OSError, ValueError) as e:
            raise UsageError(f"Results file {file} is not readable JSON: {e}.") from None
        runs = data if isinstance(data, list) else [data]
        matched = 0
        for run in runs:
            artifact = Path(str(run.get("artifact", ""))).name if isinstance(run, dict) else ""
            if artifact not in evaluations:
                continue
            matched += 1
            if "metrics" in run:
                evaluations[artifact].append(_evaluation(run))
            elif "latency_ms" in run:
                benchmarks[artifact].append(_benchmark(run))
        if not matched:
            raise UsageError(
                f"Results file {file} has no result for the bundled files ({', '.join(names)}).",
                hint="Give the --json of `edgekit evaluate` or `edgekit benchmark` run on these files.",
            )
    return evaluations, benchmarks


def _evaluation(report: dict[str, Any]) -> dict[str, Any]:
    metrics = {k: v for k, v in report["metrics"].items() if isinstance(v, (int, float))}
    return {"data": Path(str(report.get("data"))).name, "metrics": metrics, "passed": report.get("passed"),
            "reference": report.get("reference"), "drop": report.get("drop")}  # fmt: skip


def _benchmark(run: dict[str, Any]) -> dict[str, Any]:
    latency = run["latency_ms"]
    env = run.get("environment") or {}
    return {
        "device": run.get("device"),
        "cpu": env.get("cpu_model"),
        "threads": run.get("threads"),
        "batch": run.get("batch"),
        "latency_ms": {k: latency.get(k) for k in ("p50", "p90", "p99", "mean")},
        "init_ms": run.get("init_ms"),
        "peak_rss_mb": run.get("peak_rss_mb"),
        "throughput_per_s": run.get("throughput_per_s"),
    }


def _stage(
    staged: Path,
    models: list[tuple[Path, Sidecar]],
    name: str,
    version: str,
    platform: str,
    labels: Path | None,
    evaluations: dict[str, list],
    benchmarks: dict[str, list],
) -> Manifest:
    (staged / "models").mkdir(parents=True)
    tokenizers: dict[str, str] = {}  # source folder -> bundle folder
    entries = []
    for path, sidecar in models:
        placed = []
        for part in artifact_files(path):
            target = staged / "models" / part.name
            if target.exists():
                raise UsageError(f"Two bundled files are named {part.name}; bundle them separately.")
            if part.is_dir():  # a folder artifact (an ONNX Runtime GenAI model): the manifest lists its files
                shutil.copytree(part, target)
            else:
                shutil.copyfile(part, target)
            placed.append(f"models/{part.name}")
        entries.append(
            ModelEntry(
                file=placed[0],
                files=placed,
                target=sidecar.target,
                runtime=sidecar.runtime,
                precision=sidecar.precision,
                quantization={"applied": sidecar.quantization.applied, "scheme_name": sidecar.quantization.scheme_name},
                inputs=[_tensor(t) for t in sidecar.tensors.inputs],
                outputs=[_tensor(t) for t in sidecar.tensors.outputs],
                preprocessing=_preprocessing(sidecar, staged, tokenizers),
                generation=_generation(path),
                evaluation=evaluations[path.name],
                benchmark=benchmarks[path.name],
                provenance=Provenance(
                    edgekit_version=sidecar.edgekit_version,
                    tools=sidecar.tools,
                    source={
                        "kind": sidecar.source.kind,
                        "format": sidecar.source.format,
                        "sha256": sidecar.source.sha256,
                    },
                    calibration={"sha256": sidecar.calibration.sha256, "samples": sidecar.calibration.samples}
                    if sidecar.calibration
                    else None,
                    route=[step.step for step in sidecar.route],
                    parity={
                        "passed": sidecar.parity.passed,
                        "samples": sidecar.parity.samples,
                        **({"not_measured": sidecar.parity.not_measured} if sidecar.parity.not_measured else {}),
                    },
                ),
            )
        )
    if labels is not None:
        shutil.copyfile(labels, staged / "labels.txt")
    files = sorted(
        (
            FileEntry(path=p.relative_to(staged).as_posix(), size_bytes=p.stat().st_size, sha256=sha256_path(p))
            for p in staged.rglob("*")
            if p.is_file()
        ),
        key=lambda f: f.path,
    )
    manifest = Manifest(
        name=name,
        version=version,
        platform=platform,  # type: ignore[arg-type]
        labels="labels.txt" if labels else None,
        models=entries,
        files=files,
    )
    (staged / MANIFEST_FILE).write_text(json.dumps(manifest.to_json(), indent=2, sort_keys=True) + "\n")
    return manifest


def _tensor(entry) -> Tensor:
    """A tensor as the app feeds or reads it: the file's own tensor (int8 with its scale and zero point in a
    full-integer file) where it differs from the source's, under the source's name."""
    own = entry.file_tensor or {}
    quant = own.get("quantization") or {}
    return Tensor(
        name=entry.name,
        file_name=own.get("name"),
        dtype=own.get("dtype", entry.dtype),
        shape=own.get("shape", entry.shape),
        scale=quant.get("scale", entry.scale),
        zero_point=quant.get("zero_point", entry.zero_point),
        role=entry.role,
    )


def _preprocessing(sidecar: Sidecar, staged: Path, tokenizers: dict[str, str]) -> Preprocessing:
    """The tokenizer files copied into the bundle (one folder per distinct tokenizer) and the fixed length."""
    source = Path(sidecar.tokenizer) if sidecar.tokenizer else None
    if source is None or not source.is_dir():
        return Preprocessing()
    key = str(source.resolve())
    if key not in tokenizers:
        folder = "tokenizer" if not tokenizers else f"tokenizer-{len(tokenizers) + 1}"
        (staged / folder).mkdir()
        for file in TOKENIZER_FILES:
            if (source / file).is_file():
                shutil.copyfile(source / file, staged / folder / file)
        tokenizers[key] = folder
    folder = tokenizers[key]
    fixed = sorted(
        {s.shape[1] for s in sidecar.tensors.inputs if s.shape and len(s.shape) == 2 and isinstance(s.shape[1], int)}
    )
    max_length = fixed[0] if len(fixed) == 1 else None  # token inputs of one fixed length: pad to it
    config = source / "tokenizer_config.json"
    lowercase = json.loads(config.read_text()).get("do_lower_case") if config.is_file() else None
    return Preprocessing(
        tokenizer=folder,
        tokenizer_files=sorted(f"{folder}/{f.name}" for f in (staged / folder).iterdir()),
        max_length=max_length,
        padding="max_length" if max_length else None,
        lowercase=lowercase,
    )


def _zip(folder: Path, archive: Path, root: str) -> None:
    """The folder as a zip whose bytes depend only on its contents: entries sorted, fixed time and modes."""
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            info = zipfile.ZipInfo(f"{root}/{path.relative_to(folder).as_posix()}", date_time=_ZIP_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, path.read_bytes(), compresslevel=9)
