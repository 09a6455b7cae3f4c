"""PyTorch quantization-aware training through PT2E: fake quantization (XNNPACKQuantizer, QAT mode) in the
training graph, then convert_pt2e; the saved program carries its int8 ranges into `executorch-int8`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgekit._lazy import require
from edgekit.compress.common import (
    Checkpoints,
    CompressResult,
    TrainSettings,
    fit_classifier,
    labelled_split,
    publish,
    scores,
    torch_logits,
)
from edgekit.compress.save import batch_dynamic
from edgekit.errors import UsageError, first_line
from edgekit.progress import Progress
from edgekit.quiet import quiet
from edgekit.sources.base import Model
from edgekit.sources.torch_source import torch_module


def _prepare(torch, model: Model, args: tuple, specs, per_channel: bool):
    """The module exported with a dynamic batch and prepared for QAT (fake quantization in the graph)."""
    with quiet():
        require("torchao", "Quantization-aware training")
        from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
            XNNPACKQuantizer,
            get_symmetric_quantization_config,
        )
        from torchao.quantization.pt2e.quantize_pt2e import prepare_qat_pt2e

    module = torch_module(model.obj)
    try:
        exported = torch.export.export(module, args, dynamic_shapes=batch_dynamic(module, specs), strict=False)
    except Exception as e:
        raise UsageError(
            f"torch.export cannot capture {model.source} for quantization-aware training: {first_line(e)}",
            hint="QAT needs a model torch.export takes with a dynamic batch.",
        ) from None
    config = get_symmetric_quantization_config(is_per_channel=per_channel, is_qat=True)
    return prepare_qat_pt2e(exported.module(), XNNPACKQuantizer().set_global(config))


def qat_torch(
    source: Model, data, out: Path, val, settings: TrainSettings, resume: bool, progress: Progress
) -> CompressResult:
    torch = require("torch", "Quantization-aware training")
    from torchao.quantization.pt2e import move_exported_model_to_eval, move_exported_model_to_train
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

    from edgekit.catalog import local_device, resolve
    from edgekit.catalog.loader import get_target
    from edgekit.compress.save import example_batch, save_program

    train, validation = labelled_split(data, val, source, settings, "Quantization-aware training")
    scored = validation or train
    recipe = resolve(get_target("executorch-int8"), local_device())  # the scheme executorch-int8 would use
    per_channel = bool(recipe.scheme and recipe.scheme.weights.per_channel)
    before = scores(torch_logits(torch_module(source.obj), scored, source), scored.labels)
    specs, args = example_batch(source, train)
    prepared = _prepare(torch, source, args, specs, per_channel)

    def set_mode(module, training: bool) -> None:  # an exported graph switches dropout/batch norm this way
        (move_exported_model_to_train if training else move_exported_model_to_eval)(module)

    checkpoints = Checkpoints(out)
    run = fit_classifier(
        prepared, source, train, validation, settings, checkpoints, resume, progress, "qat", set_mode=set_mode
    )
    with quiet():
        converted = convert_pt2e(prepared)
    after = scores(torch_logits(converted, scored, source), scored.labels)
    record: dict[str, Any] = {
        "method": "qat",
        "tool": "PT2E prepare_qat_pt2e / convert_pt2e, XNNPACKQuantizer (QAT)",
        "per_channel_weights": per_channel,
        "settings": settings.__dict__,
        "vocab_size": source.extra.get("vocab_size"),
        "source": {"path": source.source, "sha256": source.source_hash},
        "data": {"path": train.source, "sha256": train.sha256, "samples": len(train)},
        "metrics_before": before,
        "metrics_after": after,
        "history": run.history,
        "training": run.stopped,
        "export_with": "executorch-int8 (the program already holds its int8 ranges)",
    }
    publish(out, lambda folder: save_program(converted, source, specs, args, folder, record), record)
    checkpoints.remove()
    return CompressResult(out, record, run.history)
