"""`edgekit diff`: every weighted layer of an exported file against its source (or another file), on real
inputs, in the file's own runtime; the first layer past the tolerance is named, with the error each layer
adds beyond what its input already carried."""

from __future__ import annotations

import fnmatch
from contextlib import ExitStack
from pathlib import Path

from edgekit.backends.taps import LayerTaps
from edgekit.errors import DataError, UsageError
from edgekit.layerdiff.match import Match, match_layers
from edgekit.layerdiff.metrics import LayerError, apply_activation
from edgekit.layerdiff.report import DEFAULT_THRESHOLDS, METRICS, DiffReport, LayerDiff, within
from edgekit.progress import SILENT, Progress
from edgekit.spec import InputSpecs, Signature

__all__ = ["DEFAULT_THRESHOLDS", "METRICS", "DiffReport", "LayerDiff", "diff"]


def diff(
    artifact: str | Path,
    data: str | Path,
    *,
    reference: str | Path | None = None,
    samples: int = 32,
    layers: str = "all",
    metric: str = "snr",
    threshold: float | None = None,
    atol: float = 1e-3,
    rtol: float = 1e-3,
    reference_inputs: InputSpecs = (),
    reference_weights: str | Path | None = None,
    tokenizer: str | Path | None = None,
    batch: int = 16,
    reduce: str | Path | None = None,
    progress: Progress = SILENT,
) -> DiffReport:
    """Compare `artifact`'s weighted layers with `reference`'s (default: the source its sidecar names).
    `reduce`: a folder for the smallest piece of the file that still diverges (ONNX-based files)."""
    from edgekit.data import batch_size_for, read_data
    from edgekit.dispatch import open_runner, require_artifact
    from edgekit.evaluation import tokenizer_for

    if metric not in METRICS:
        raise UsageError(f"Unknown metric '{metric}'.", hint=f"Choose one of: {', '.join(METRICS)}.")
    artifact = require_artifact(Path(artifact))
    art = artifact_taps(artifact)  # refuses a runtime that exposes nothing before any work
    if reduce is not None and not getattr(art, "reducible", False):
        raise UsageError(
            f"--reduce works on ONNX-based files (onnx-*, tensorrt-*); {artifact.name} runs in {art.runtime}.",
            hint="Diff the onnx-* export of the same source with --reduce to get a piece to report.",
        )
    reference = reference if reference is not None else _sidecar_source(artifact)
    with open_runner(artifact) as runner:
        signature = Signature(runner.input_specs())
    dataset = read_data(data, signature, tokenizer_for(artifact, tokenizer), samples)
    with ExitStack() as stack:
        stack.enter_context(art)
        ref = stack.enter_context(_reference_taps(reference, signature, reference_inputs, reference_weights))
        with progress.step(f"prepare {artifact.name} for a layer-by-layer run ({art.runtime})"):
            art.bind_reference(ref)
        matches = match_layers(ref.layers, art.layers)
        if not any(m.artifact for m in matches):
            raise UsageError(
                f"No weighted layer of {artifact.name} has the weights of any layer of {reference}: they hold "
                "different models.",
                hint="Pass the source the file was exported from (--reference), with its --weights.",
            )
        _check_layers(layers, matches)  # before the run, not after it
        errors = {m.reference.name: LayerError() for m in matches if m.artifact}
        misfit: dict[str, str] = {}
        step = batch_size_for(signature, batch)
        with progress.step(f"diff {artifact.name} against {reference} on {len(dataset)} samples"):
            for feed in dataset.batches(step):  # the data's arrays are the file's inputs (read_data)
                want, got = ref.run(feed), art.run(feed)
                _accumulate(matches, want, got, errors, misfit, atol, rtol)
        order = [layer.name for layer in ref.layers]  # execution order, known once the reference has run
        matches = sorted((m for m in matches if m.reference.name in order), key=lambda m: order.index(m.reference.name))
        report = _report(
            artifact, reference, art, ref, matches, errors, misfit, len(dataset), layers, metric, threshold, atol, rtol
        )
        first = report.first_divergent
        if reduce is not None and first is not None:
            from edgekit.layerdiff.reduce import reduce_divergence

            gate = (lambda sums: within(sums, metric, report.threshold), atol, rtol)
            with progress.step(f"reduce {artifact.name} to the smallest piece that diverges at {first.layer}"):
                reduced = reduce_divergence(art, ref, matches, first.layer, dataset.arrays, gate, Path(reduce))
            report.reduced = reduced.to_json()
        return report


def artifact_taps(path: Path) -> LayerTaps:
    """The file's runtime with its intermediates exposed; a clear refusal for runtimes that expose none here."""
    from edgekit.backends.registry import backend_for_file
    from edgekit.sidecar import read_io

    backend = backend_for_file(path)
    if backend.layer_taps is None:
        raise UsageError(
            f"{backend.runtime} files do not expose their intermediate tensors to edgekit diff yet.",
            hint="Compare what the file does as a whole with `edgekit evaluate FILE --reference SOURCE`, or diff "
            "the onnx-* or tflite-* export of the same source, which expose every layer.",
        )
    return backend.layer_taps(path, read_io(path))


def _reference_taps(reference: str | Path, signature: Signature, inputs: InputSpecs, weights) -> LayerTaps:
    from edgekit.backends.registry import known_suffixes

    path = Path(reference)
    if path.suffix in known_suffixes() and path.suffix != ".onnx" and path.is_file():
        return artifact_taps(path)  # a second exported file
    from edgekit.sources import load

    model = load(reference, inputs or signature.inputs, weights)
    if model.format == "torch":
        from edgekit.layerdiff.torch_taps import TorchTaps

        return TorchTaps(model)
    if model.format == "onnx":
        from edgekit.backends.onnxruntime.taps import OnnxTaps

        return OnnxTaps(model.obj)
    from edgekit.layerdiff.keras_taps import KerasTaps

    return KerasTaps(model)


def _sidecar_source(artifact: Path) -> str:
    from edgekit.sidecar import read_sidecar

    sidecar = read_sidecar(artifact)
    hint = "Pass --reference SOURCE (with --weights for a package.module:factory) or another exported file."
    if sidecar is None:
        raise UsageError(f"Which model should {artifact.name} be compared with? It has no sidecar.", hint=hint)
    source = sidecar.source
    if source.kind == "factory":
        raise UsageError(
            f"{artifact.name} came from {source.path}: pass it with its weights.",
            hint=f"--reference {source.path} --weights WEIGHTS",
        )
    if not Path(source.path).exists():
        raise UsageError(f"{artifact.name} came from {source.path}, which is gone.", hint=hint)
    return source.path


def _chosen(layers: str, matches: list[Match]) -> list[Match]:
    return [m for m in matches if layers == "all" or fnmatch.fnmatchcase(m.reference.name, layers)]


def _check_layers(layers: str, matches: list[Match]) -> None:
    """Refuse a --layers that names no layer of the reference, listing some of them."""
    if not _chosen(layers, matches):
        raise UsageError(
            f"No layer of the reference matches --layers {layers!r}.",
            hint=f"Its layers: {', '.join(m.reference.name for m in matches[:12])}"
            + (", ..." if len(matches) > 12 else ""),
        )


def _accumulate(matches: list[Match], want: dict, got: dict, errors: dict, misfit: dict, atol, rtol) -> None:
    for m in matches:
        name = m.reference.name
        if m.artifact is None or name in misfit:
            continue
        if name not in want:
            misfit[name] = "the reference did not run this layer on these inputs"
            continue
        if m.artifact.name not in got:
            misfit[name] = (
                f"packed into the fused node {m.artifact.name.rsplit('/', 1)[0]}, which has no output of its own"
            )
            continue
        (want_in, want_out), (got_in, got_out) = want[name], got[m.artifact.name]
        if m.folded_batch_norm is not None:
            scale, shift = m.folded_batch_norm  # on the reference's output channels (its last axis)
            want_out = want_out * scale + shift
        want_out, got_out = _like_for_like(m, want_out, got_out)
        error = errors[name]
        if not error.add("output", got_out, want_out, atol, rtol, m.artifact.float_weights, m.reference.channel_axis):
            misfit[name] = f"its output has shape {tuple(got_out.shape)}, the reference's {tuple(want_out.shape)}"
            continue
        error.add("input", got_in, want_in, atol, rtol, channel_axis=m.reference.channel_axis)


def _like_for_like(m: Match, want, got):
    """The two outputs as the same computation: with the activation one of them fused in, and without the bias
    a fused op downstream adds."""
    a, r = m.artifact, m.reference
    assert a is not None
    if a.activation != r.activation:  # TFLite fuses ReLU into its convolutions
        want, got = apply_activation(a.activation, want), apply_activation(r.activation, got)
    if not a.bias_in_output and r.bias is not None and r.activation is None and want.shape[-1] == r.bias.size:
        want = want - r.bias
    return want, got


def _notes(ref: LayerTaps, errors: dict[str, LayerError]) -> list[str]:
    notes = []
    if ref.idle:
        notes.append(f"{len(ref.idle)} layer(s) of the reference did not run on these inputs: {', '.join(ref.idle)}")
    folded = [name for name, error in errors.items() if error.scale is not None]
    if folded:
        notes.append(
            f"{len(folded)} layer(s) of the file compute the reference's output times a constant (a converter "
            f"folded it into their float weights; compared divided by it): {', '.join(folded[:6])}"
            + (" ..." if len(folded) > 6 else "")
        )
    return notes


def _report(artifact, reference, art, ref, matches, errors, misfit, n, layers, metric, threshold, atol, rtol):
    threshold = DEFAULT_THRESHOLDS[metric] if threshold is None else threshold
    rows = [
        LayerDiff.of(m, errors.get(m.reference.name), misfit.get(m.reference.name), metric, threshold)
        for m in _chosen(layers, matches)
    ]
    used = {m.artifact.name for m in matches if m.artifact}
    if not any(r.compared for r in rows):
        raise DataError(
            "No matched layer could be compared: " + "; ".join(f"{r.layer}: {r.unmatched}" for r in rows[:3]),
        )
    return DiffReport(
        artifact=str(artifact),
        reference=str(reference),
        runtime=art.runtime,
        reference_runtime=ref.runtime,
        samples=n,
        metric=metric,
        threshold=threshold,
        atol=atol,
        rtol=rtol,
        layers=rows,
        unmatched_artifact_layers=[a.name for a in art.layers if a.name not in used],
        notes=[note for note in (art.note, ref.note) if note] + _notes(ref, errors),
    )
