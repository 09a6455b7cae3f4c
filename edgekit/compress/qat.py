"""Quantization-aware training: fine-tune with fake quantization so the int8 export keeps accuracy."""

from __future__ import annotations

from pathlib import Path

from edgekit.compress.common import CompressResult, TrainSettings, seed_everything
from edgekit.errors import UsageError
from edgekit.progress import SILENT, Progress
from edgekit.sources import load
from edgekit.spec import TensorSpec


def qat(
    model: str | Path,
    data: str | Path,
    out: str | Path,
    *,
    val: str | Path | None = None,
    settings: TrainSettings = TrainSettings(),
    inputs: tuple[TensorSpec, ...] = (),
    weights: str | Path | None = None,
    resume: bool = False,
    progress: Progress = SILENT,
) -> CompressResult:
    """Quantization-aware training. PyTorch (PT2E, XNNPACK's quantizer): export OUT with executorch-int8;
    tf_keras (tfmot quantize_model): export OUT with tflite-int8. Default rate 1e-4: the model is trained."""
    settings = settings.with_default_lr(1e-4)
    seed_everything(settings.seed)
    with progress.step(f"load {model}"):
        source = load(model, inputs, weights)
    if source.format == "torch":
        from edgekit.compress.qat_torch import qat_torch

        return qat_torch(source, data, Path(out), val, settings, resume, progress)
    if source.format != "keras":
        raise UsageError(f"Quantization-aware training takes PyTorch and tf_keras models; {model} is {source.format}.")
    from edgekit.compress.keras_compress import qat_keras

    return qat_keras(source, data, Path(out), val, settings, resume, progress)
