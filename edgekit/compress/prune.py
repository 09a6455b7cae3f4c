"""Pruning with fine-tuning: magnitude (unstructured, weights zeroed) or structured (units removed).

Unstructured sparsity makes a file neither smaller nor faster by itself, only more compressible (its gzip
size is reported); structured pruning removes whole channels or neurons, so the exported file is smaller
and faster. PyTorch through torch.nn.utils.prune and Torch-Pruning; Keras (tf_keras) through
tensorflow-model-optimization.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgekit.compress.common import (
    Checkpoints,
    CompressResult,
    TrainSettings,
    file_sizes,
    fit_classifier,
    labelled_split,
    output_layer,
    parameter_count,
    publish,
    scores,
    seed_everything,
    torch_logits,
)
from edgekit.compress.save import save_hf, save_torch
from edgekit.errors import UsageError, first_line, is_user_frame
from edgekit.progress import SILENT, Progress
from edgekit.sources import load
from edgekit.sources.base import Model
from edgekit.spec import TensorSpec

METHODS = ("magnitude", "structured")
SCHEDULES = ("polynomial", "one-shot")


def target_sparsity(final: float, schedule: str, epoch: int, ramp: int) -> float:
    """The sparsity to reach by the end of `epoch` (0-based): all at once, or rising as 1 − (1 − t)³
    (the polynomial decay of Zhu & Gupta) so that epoch `ramp` (1-based) reaches `final` exactly and later
    epochs keep it."""
    if schedule == "one-shot" or ramp <= 1:
        return final
    t = min((epoch + 1) / ramp, 1.0)
    return final * (1 - (1 - t) ** 3)


def _prunable_torch(module) -> list[tuple[Any, str]]:
    import torch

    return [
        (m, "weight") for m in module.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d))
    ]


def torch_sparsity(module) -> float:
    """Fraction of zeros over the weights of the Linear and convolution layers."""
    weights = [m.weight.detach() for m, _ in _prunable_torch(module)]
    total = sum(w.numel() for w in weights)
    return float(sum(int((w == 0).sum()) for w in weights) / total) if total else 0.0


def _mask_sparsity(params) -> float:
    masks = [getattr(m, f"{name}_mask", None) for m, name in params]
    total = sum(p.weight.numel() for p, _ in params)
    return sum(int((mask == 0).sum()) for mask in masks if mask is not None) / total if total else 0.0


def _magnitude_torch(module, sparsity: float) -> None:
    """Global magnitude pruning of all Linear/convolution weights up to `sparsity`, on top of the masks already
    there (the weights stay the parameters the optimizer trains; masks are made permanent at the end)."""
    import torch
    import torch.nn.utils.prune as tprune

    params = _prunable_torch(module)
    done = _mask_sparsity(params)
    if sparsity <= done:
        return
    remaining = sum(p.weight.numel() for p, _ in params) * (1 - done)
    amount = round((sparsity - done) / (1 - done) * remaining)  # of the weights not pruned yet
    # magnitudes of the weights as they are now (`m.weight` is only refreshed by the next forward)
    current = {
        (m, name): getattr(m, f"{name}_orig") * getattr(m, f"{name}_mask") if tprune.is_pruned(m) else getattr(m, name)
        for m, name in params
    }
    with torch.no_grad():
        tprune.global_unstructured(
            params,
            pruning_method=tprune.L1Unstructured,
            amount=int(amount),
            importance_scores={k: v.detach() for k, v in current.items()},
        )


def _make_permanent(module) -> None:
    import torch.nn.utils.prune as tprune

    for m, name in _prunable_torch(module):
        if tprune.is_pruned(m):
            tprune.remove(m, name)


def _structured_torch(module, model: Model, sparsity: float, classes: int) -> None:
    """Remove channels / neurons by magnitude with Torch-Pruning, which follows the dependencies between layers."""
    import torch

    from edgekit._lazy import require
    from edgekit.sources.torch_source import example_args

    tp = require("torch_pruning", "Structured pruning")
    example = tuple(a[:1] for a in example_args(model))
    ignored = output_layer(module, classes)
    # transformers: whole attention heads (query/key/value rows, the output projection's columns) and FFN
    # neurons, the same share in every layer; the hidden size stays, so embeddings and norms are left alone
    attention = [
        m
        for m in module.modules()
        if hasattr(m, "num_attention_heads")
        and all(isinstance(getattr(m, n, None), torch.nn.Linear) for n in ("query", "key", "value"))
    ]
    heads = {getattr(m, n): m.num_attention_heads for m in attention for n in ("query", "key", "value")}
    if heads:
        ignored += [m for m in module.modules() if isinstance(m, torch.nn.Embedding)]
        ignored += [m for name, m in module.named_modules() if name.endswith("pooler")]
    try:
        pruner = tp.pruner.MetaPruner(
            module,
            example,
            importance=tp.importance.MagnitudeImportance(p=2),
            pruning_ratio=sparsity,
            global_pruning=False,
            ignored_layers=ignored,
            **(
                {"num_heads": heads, "prune_num_heads": True, "prune_head_dims": False, "head_pruning_ratio": sparsity}
                if heads
                else {}
            ),
        )
        pruner.step()
        with torch.no_grad():
            module(*example)  # sizes the code hard-wires (a view to 512 features) break only when it runs
    except Exception as e:  # Torch-Pruning raises on graphs it cannot follow, the forward on shapes it changed
        raise UsageError(
            f"Structured pruning cannot handle {model.source}: {type(e).__name__}: {first_line(e)}{_where(e)}",
            hint="Use --method magnitude, or write the forward with sizes taken from the tensors "
            "(x.flatten(1), not x.view(-1, 512)).",
        ) from None


def _where(e: BaseException) -> str:
    """The user's line in the traceback (the layer or statement that failed), when there is one."""
    import traceback

    frames = [f for f in traceback.extract_tb(e.__traceback__) if is_user_frame(f.filename)]
    return (
        f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno} in {frames[-1].name}: `{frames[-1].line}`)"
        if frames
        else ""
    )


def prune(
    model: str | Path,
    data: str | Path,
    out: str | Path,
    *,
    sparsity: float,
    method: str = "magnitude",
    schedule: str = "polynomial",
    finetune_epochs: int = 30,
    ramp_epochs: int = 2,
    val: str | Path | None = None,
    settings: TrainSettings = TrainSettings(),
    inputs: tuple[TensorSpec, ...] = (),
    weights: str | Path | None = None,
    resume: bool = False,
    progress: Progress = SILENT,
) -> CompressResult:
    """Prune `model` to `sparsity` with `method` (magnitude: reached over `ramp_epochs`), fine-tuning on `data`
    for at most `finetune_epochs` (until the validation loss stops improving, see TrainSettings)."""
    if not 0 < sparsity < 1:
        raise UsageError(f"--sparsity {sparsity} is outside (0, 1): give the fraction of weights to remove, e.g. 0.5.")
    if method not in METHODS or schedule not in SCHEDULES:
        raise UsageError(f"--method is one of {', '.join(METHODS)} and --schedule one of {', '.join(SCHEDULES)}.")
    if ramp_epochs < 1:
        raise UsageError(f"--ramp-epochs {ramp_epochs}: give 1 or more (1 reaches the sparsity at once).")
    settings = settings.with_epochs(finetune_epochs).with_default_lr(1e-3)
    out = Path(out)
    seed_everything(settings.seed)
    with progress.step(f"load {model}"):
        source = load(model, inputs, weights)
    if source.format == "keras":
        from edgekit.compress.keras_compress import prune_keras

        return prune_keras(source, data, out, sparsity, method, schedule, ramp_epochs, val, settings, resume, progress)
    if source.format != "torch":
        raise UsageError(f"Pruning takes PyTorch or Keras sources; {model} is {source.format}.")
    return _prune_torch(source, data, out, sparsity, method, schedule, ramp_epochs, val, settings, resume, progress)


def _prune_torch(
    source: Model,
    data,
    out: Path,
    sparsity: float,
    method: str,
    schedule: str,
    ramp: int,
    val,
    settings: TrainSettings,
    resume: bool,
    progress: Progress,
) -> CompressResult:
    train, validation = labelled_split(data, val, source, settings, "Fine-tuning after pruning")
    scored = validation or train
    module = source.obj
    classes = torch_logits(module, train.head(2), source).shape[-1]
    before = scores(torch_logits(module, scored, source), scored.labels)
    params_before = parameter_count(module)
    if method == "structured":
        with progress.step(f"structured pruning: remove {sparsity:.0%} of channels and neurons"):
            _structured_torch(module, source, sparsity, classes)

    def before_epoch(epoch: int) -> None:
        if method == "magnitude":
            _magnitude_torch(module, target_sparsity(sparsity, schedule, epoch, ramp))

    if method == "magnitude" and settings.epochs == 0:
        _magnitude_torch(module, sparsity)
    checkpoints = Checkpoints(out)
    rising = method == "magnitude" and schedule == "polynomial"
    run = fit_classifier(
        module, source, train, validation, settings, checkpoints, resume, progress,
        before_epoch=before_epoch, start=min(ramp, settings.epochs) - 1 if rising else 0,
    )  # fmt: skip
    _make_permanent(module)
    after = scores(torch_logits(module, scored, source), scored.labels)
    record: dict[str, Any] = {
        "method": "prune",
        "vocab_size": source.extra.get("vocab_size"),
        "pruning": method,
        "schedule": schedule,
        "ramp_epochs": ramp if rising else None,
        "sparsity_target": sparsity,
        "sparsity_reached": round(torch_sparsity(module), 4),
        "parameters_removed": round(1 - parameter_count(module) / params_before, 4),
        "settings": settings.__dict__,
        "parameters_before": params_before,
        "parameters_after": parameter_count(module),
        "source": {"path": source.source, "sha256": source.source_hash},
        "data": {"path": train.source, "sha256": train.sha256, "samples": len(train)},
        "metrics_before": before,
        "metrics_after": after,
        "history": run.history,
        "training": run.stopped,
    }

    def write(folder: Path) -> str:
        # a Hugging Face config cannot say "fewer heads of the same size": structured output is a program
        as_hf = source.kind == "hf" and method != "structured"
        entry = (
            save_hf(module.model, source.tokenizer_dir, folder)
            if as_hf
            else save_torch(module, source, folder, train, record)
        )
        weights = "model.safetensors" if as_hf else "weights.safetensors"
        record["size"] = file_sizes(folder, weights)
        return entry

    publish(out, write, record)
    checkpoints.remove()
    return CompressResult(out, record, run.history)
