"""export(): load -> route -> quantize -> parity -> publish, with one place for the bookkeeping."""
from __future__ import annotations

import importlib
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from edgekit import __version__
from edgekit.artifact import prepare_out_dir, publish, sidecar_path, staging, write_json_atomic
from edgekit.catalog import get_device, get_target, local_device, resolve
from edgekit.data import CALIB_HINT, Dataset, batch_size_for, generated_inputs, read_data, static_shapes
from edgekit.errors import NoRouteError, ParityError, UsageError
from edgekit.models import Model, load
from edgekit.parity import ParityResult, check_parity
from edgekit.progress import SILENT, Progress
from edgekit.quantize import QUANTIZERS, supports
from edgekit.route import find_route
from edgekit.runners import open_runner
from edgekit.runners.source import source_runner
from edgekit.spec import Signature, TensorSpec

CALIB_LIMIT = 256
_VERSIONED = ("onnx", "onnxruntime", "torch", "onnxscript", "tensorflow", "tf2onnx", "tf_keras", "keras",
              "transformers", "numpy", "onnx2tf", "ai-edge-litert", "executorch", "torchao")


@dataclass
class ExportResult:
    artifact: Path
    sidecar: dict[str, Any]
    parity: ParityResult
    warnings: list[str] = field(default_factory=list)


def _call(spec: str, *args, **kwargs):
    module, _, fn = spec.partition(":")
    return getattr(importlib.import_module(module), fn)(*args, **kwargs)


def tool_versions() -> dict[str, str]:
    out = {"edgekit": __version__}
    for name in _VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def export(source: str | Path, target: str, out_dir: str | Path, *, calib: str | Path | None = None,
           device: str | None = None, inputs: tuple[TensorSpec, ...] = (), weights: str | Path | None = None,
           tokenizer: str | Path | None = None, calib_limit: int = CALIB_LIMIT, allow_float_fallback: bool = False,
           progress: Progress = SILENT) -> ExportResult:
    """Export `source` to `target` in folder `out_dir`; raise ParityError if the file disagrees with its source.

    allow_float_fallback: an integer target may keep ops without integer kernels in float (they are
    listed in the sidecar); without it such a file is refused.
    """
    tgt = get_target(target)
    dev = get_device(device) if device else local_device()
    if not supports(tgt.format, tgt.quantization):
        raise NoRouteError(f"Target '{tgt.name}' ({tgt.description}) has no exporter in this version of edgekit.",
                           hint="Run `edgekit targets` to see which targets export here.")
    quantizer = QUANTIZERS.get((tgt.format, tgt.quantization))  # None: nothing after conversion
    out = prepare_out_dir(out_dir)
    if calib is None and tgt.needs_calibration:
        raise UsageError(f"Target '{tgt.name}' needs calibration data to set its int8 ranges.", hint=CALIB_HINT)

    with progress.step(f"load {source}"):
        model = load(source, inputs, weights)
    if tokenizer:
        model.tokenizer_dir = Path(tokenizer)
    route = find_route(model.format, tgt.format)
    recipe = replace(resolve(tgt, dev), allow_float_fallback=allow_float_fallback)
    data = read_data(calib, model.signature, model.tokenizer_dir, calib_limit) if calib else None
    warnings: list[str] = []
    steps: list[dict[str, Any]] = []

    with staging(out) as tmp:
        current: Path | None = None  # the latest step's file; None while the model is only in memory
        if not route:
            current = tmp / f"float{tgt.suffix}"
            _save_source_copy(model, current)
        # converters that need fixed shapes (onnx2tf, ExecuTorch): the whole route then exports with them
        edge_model = _with_static_shapes(model, data) if any(e.static_shapes for e in route) else model
        for i, edge in enumerate(route):
            step_file = tmp / f"step{i}{tgt.suffix if i == len(route) - 1 else '.' + edge.dst}"
            with progress.step(f"convert {edge.src} -> {edge.dst} ({edge.tool})"):
                t0 = time.perf_counter()
                notes = _call(edge.impl, edge_model, current, step_file, recipe, data)
            steps.append({"step": f"{edge.src}->{edge.dst}", "tool": edge.tool, "seconds": round(time.perf_counter() - t0, 2), **notes})
            current = step_file
        quant_notes: dict[str, Any] = {}
        if quantizer:
            final = tmp / f"final{tgt.suffix}"
            with progress.step(f"quantize for {tgt.name} on {dev.name}" + (f" ({recipe.scheme_name})" if recipe.scheme_name else "")):
                t0 = time.perf_counter()
                quant_notes = _call(quantizer, current, final, recipe, data,
                                    batch_size=batch_size_for(model.signature, default=8))
            steps.append({"step": tgt.quantization, "tool": quant_notes.get("method"), "seconds": round(time.perf_counter() - t0, 2)})
            current = final

        parity_data = data
        if parity_data is None:
            parity_data = generated_inputs(model.signature, vocab_size=model.extra.get("vocab_size"))
            warnings.append("parity was checked on generated random inputs, not real data: pass --calib DATA "
                            "for a check that means something")
            progress.warn(warnings[-1])
        tensors = _artifact_io(current, model)
        write_json_atomic(sidecar_path(current), {"tensors": tensors})  # runners of signature-less files read it
        with progress.step(f"parity on {len(parity_data)} samples ({parity_data.source})"):
            parity = _parity(model, current, parity_data, tgt)

        artifact = out / f"{model.name}-{tgt.name}{tgt.suffix}"
        rejected = artifact.with_name(f"{artifact.stem}.rejected{artifact.suffix}")
        sidecar = _sidecar(model, tgt, dev, recipe, data, parity, steps, quant_notes, tensors, warnings)
        if not parity.passed:
            publish(current, rejected, sidecar)
            raise ParityError(
                f"Parity failed for {tgt.name}: " + "; ".join(parity.failures()),
                hint=f"The file was kept for inspection as {rejected}, not as {artifact.name}.",
            )
        publish(current, artifact, sidecar)
        for stale in (rejected, sidecar_path(rejected)):
            stale.unlink(missing_ok=True)  # an earlier failed attempt no longer describes this export
    return ExportResult(artifact, sidecar, parity, warnings)


def _with_static_shapes(model: Model, data: Dataset | None) -> Model:
    shapes = static_shapes(model.signature.inputs, data)
    inputs = tuple(replace(s, shape=shapes[s.name]) for s in model.signature.inputs)
    return replace(model, signature=Signature(inputs, model.signature.outputs))


def _save_source_copy(model: Model, dst: Path) -> None:
    import onnx

    onnx.save(model.obj, str(dst))


def _parity(model: Model, artifact: Path, data: Dataset, tgt) -> ParityResult:
    batch = batch_size_for(model.signature, default=32)
    with source_runner(model) as ref, open_runner(artifact) as got:
        return check_parity(ref, got, data, batch, tgt.parity)


def _artifact_io(path: Path, model: Model) -> dict[str, Any]:
    """The artifact's input/output tensors: read from an ONNX file; otherwise the source's signature."""
    if path.suffix == ".onnx":
        import onnx

        from edgekit.models.onnx_source import onnx_signature

        return onnx_signature(onnx.load(str(path), load_external_data=False)).to_json()
    if path.suffix == ".tflite":
        from edgekit.runners.litert import tflite_io

        return tflite_io(path, model.signature)
    from edgekit.route.torch_to_onnx import example_args, output_names

    names = output_names(model, example_args(model))
    return {"inputs": [s.to_json() for s in model.signature.inputs], "outputs": [{"name": n} for n in names]}


def _sidecar(model, tgt, dev, recipe, data, parity, steps, quant_notes, tensors, warnings) -> dict[str, Any]:
    return {
        "edgekit_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "target": tgt.name,
        "runtime": tgt.runtime,
        "precision": tgt.precision,
        "route": steps,
        "device": {"name": dev.name, "description": dev.description},
        "tools": tool_versions(),
        "source": model.describe(),
        "tokenizer": str(model.tokenizer_dir) if model.tokenizer_dir else None,
        "tensors": tensors,
        "quantization": {**recipe.to_json(), **quant_notes},
        "calibration": {"path": data.source, "sha256": data.sha256, "samples": len(data)} if data else None,
        "parity": parity.to_json(),
        "notes": model.notes,
        "warnings": warnings,
    }
