"""Knowledge distillation: a student learns from a teacher's softened outputs and, with α > 0, the labels.

loss = α·CE(student, labels) + (1−α)·T²·KL(softmax(teacher/T) ‖ softmax(student/T)), the KL averaged per
sample (`batchmean`) and scaled by T² so the soft term keeps its weight whatever T is (Hinton et al.).
Teacher logits are computed once per (teacher, data) and cached by their content hashes.
"""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.cache import cache_dir, write_cache_file
from edgekit.compress.common import (
    Checkpoints,
    CompressResult,
    Trained,
    TrainSettings,
    distillation_loss,
    publish,
    read_training_data,
    scores,
    seed_everything,
    source_logits,
    split_validation,
    torch_feed,
    train_epochs,
    validation_loss,
)
from edgekit.compress.distill_lm import is_lm, lm_scores, train_lm
from edgekit.compress.save import save_hf, save_keras, save_torch
from edgekit.data import Dataset
from edgekit.errors import UsageError
from edgekit.progress import SILENT, Progress
from edgekit.sources import load
from edgekit.sources.base import Model
from edgekit.spec import TensorSpec


def teacher_logits(teacher: Model, data: Dataset, progress: Progress) -> tuple[np.ndarray, str]:
    """The teacher's first output over `data`, from the cache when this (teacher, data) pair was seen;
    returns (logits, "cached" | "computed")."""
    key = hashlib.sha256(f"{teacher.source_hash}:{data.sha256}:{len(data)}".encode()).hexdigest()[:32]
    path = cache_dir() / "teacher-logits" / f"{key}.npy"
    if path.is_file():
        return np.load(path, allow_pickle=False), "cached"
    with progress.step(f"teacher logits on {len(data)} samples (cached for the next run)"):
        logits = source_logits(teacher, data)
    write_cache_file(path, lambda tmp: np.save(tmp, logits.astype(np.float32)))
    return logits, "computed"


def _encoder_layers(hf_model):
    """The ModuleList of a Hugging Face encoder's layers (BERT: encoder.layer, DistilBERT: transformer.layer)."""
    import torch

    count = getattr(hf_model.config, "num_hidden_layers", None)
    for name, module in hf_model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == count:
            return name, module
    raise UsageError(
        f"Cannot find the {count} encoder layers of this {type(hf_model).__name__} to build a student from.",
        hint="Pass --student SOURCE instead of --student-layers.",
    )


def student_from_layers(teacher: Model, layers: int | None, width: float | None = None) -> tuple[Model, list[int]]:
    """A student built from a Hugging Face teacher's own encoder: `layers` of its layers, evenly spaced (as
    DistilBERT took every other layer; all of them when None), each feed-forward block narrowed to `width` of
    its hidden units (the teacher's strongest ones), with the embeddings and the head: its weights start as the
    teacher's."""
    if teacher.kind != "hf":
        raise UsageError(
            "--student-layers and --student-width build a student from a Hugging Face teacher's own layers; "
            f"{teacher.source} is a {teacher.kind} source.",
            hint="Pass --student SOURCE.",
        )
    wrapper = copy.deepcopy(teacher.obj)
    name, module = _encoder_layers(wrapper.model)
    total = len(module)
    if layers is not None and not 1 <= layers <= total - (width is None):
        raise UsageError(f"--student-layers {layers}: the teacher has {total} layers; give 1 to {total - 1}.")
    keep = sorted({round(i) for i in np.linspace(0, total - 1, layers or total)})
    parent = wrapper.model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else wrapper.model
    setattr(parent, name.rsplit(".", 1)[-1], type(module)([module[i] for i in keep]))
    wrapper.model.config.num_hidden_layers = len(keep)
    label = f"{len(keep)}layers"
    if width is not None:
        units = [narrow_feed_forward(layer, width) for layer in getattr(parent, name.rsplit(".", 1)[-1])]
        _set_intermediate_size(wrapper.model.config, units[0])
        label += f"-width{width:g}"
    student = copy.copy(teacher)
    student.obj, student.name = wrapper, f"{teacher.name}-{label}"
    return student, keep


def narrow_feed_forward(layer, width: float) -> int:
    """Keep `width` of an encoder layer's feed-forward hidden units: its expanding Linear's rows and the
    contracting Linear's columns of the units with the largest ‖w_in‖·‖w_out‖ (the activation between them
    works unit by unit, so the others are removed whole). Returns the units kept."""
    import torch

    if not 0 < width <= 1:
        raise UsageError(f"--student-width {width}: give the share of feed-forward units to keep, in (0, 1].")
    expand, contract = _feed_forward(layer)
    units = expand.out_features
    kept = max(1, round(width * units))
    importance = expand.weight.detach().norm(dim=1) * contract.weight.detach().norm(dim=0)
    rows = torch.sort(torch.topk(importance, kept).indices).values
    with torch.no_grad():
        expand.weight = torch.nn.Parameter(expand.weight[rows].clone())
        if expand.bias is not None:
            expand.bias = torch.nn.Parameter(expand.bias[rows].clone())
        contract.weight = torch.nn.Parameter(contract.weight[:, rows].clone())
    expand.out_features = contract.in_features = kept
    return kept


def _feed_forward(layer):
    """An encoder layer's feed-forward pair: the Linear that widens the hidden size and the one that brings it
    back (BERT: intermediate.dense and output.dense; DistilBERT: ffn.lin1 and ffn.lin2)."""
    import torch

    linears = [m for m in layer.modules() if isinstance(m, torch.nn.Linear)]
    for expand in linears:
        for contract in linears:
            wider = expand.out_features > expand.in_features
            if wider and contract.in_features == expand.out_features and contract.out_features == expand.in_features:
                return expand, contract
    raise UsageError(
        f"Cannot find the feed-forward block of this {type(layer).__name__} (a Linear that widens the hidden size "
        "and one that narrows it back) to make the student narrower.",
        hint="Leave --student-width out, or pass --student SOURCE.",
    )


def _set_intermediate_size(config, units: int) -> None:
    """The narrower feed-forward size in the student's config, under the name its family uses."""
    for key in ("intermediate_size", "hidden_dim", "ffn_dim", "n_inner"):
        if getattr(config, key, None) is not None:
            setattr(config, key, units)
            return
    raise UsageError(f"{type(config).__name__} names no feed-forward size edgekit knows to narrow the student.")


def _check_classes(teacher_out: np.ndarray, student: Model, data: Dataset) -> None:
    out = source_logits(student, data.head(2))
    if out.shape[-1] != teacher_out.shape[-1]:
        raise UsageError(
            f"The student gives {out.shape[-1]} outputs per sample and the teacher {teacher_out.shape[-1]}: "
            "distillation needs the same classes.",
            hint="Give the student a head with as many classes as the teacher.",
        )


def _train_torch(
    student: Model,
    soft: np.ndarray,
    train: Dataset,
    alpha: float,
    temperature: float,
    settings: TrainSettings,
    checkpoints: Checkpoints,
    resume: bool,
    progress: Progress,
    validate=None,
) -> Trained:
    import torch

    from edgekit.sources.torch_source import flatten_outputs

    module = student.obj
    soft_t = torch.from_numpy(soft)
    labels = torch.from_numpy(train.labels.astype(np.int64)) if train.labels is not None and alpha > 0 else None
    torch.manual_seed(settings.seed)
    optimizer = torch.optim.AdamW(module.parameters(), lr=settings.rate)

    def step(idx: np.ndarray):
        logits = flatten_outputs(module(*torch_feed(train, idx, student)))[0]
        return distillation_loss(logits, soft_t[idx], labels[idx] if labels is not None else None, alpha, temperature)

    return train_epochs(
        module, optimizer, step, train, settings, checkpoints, resume, progress, "distill", validate=validate
    )


def distill(
    teacher: str | Path,
    data: str | Path,
    out: str | Path,
    *,
    student: str | Path | None = None,
    student_layers: int | None = None,
    student_width: float | None = None,
    val: str | Path | None = None,
    alpha: float = 0.5,
    temperature: float = 2.0,
    settings: TrainSettings = TrainSettings(),
    inputs: tuple[TensorSpec, ...] = (),
    teacher_weights: str | Path | None = None,
    student_weights: str | Path | None = None,
    tokenizer: str | Path | None = None,
    resume: bool = False,
    progress: Progress = SILENT,
) -> CompressResult:
    """Train `student` (or one built from the teacher's own layers: `student_layers` of them, their feed-forward
    blocks narrowed to `student_width`) on the teacher's soft targets until
    the validation loss stops improving (see TrainSettings; default rate: 1e-4 for a student that starts from
    pretrained weights, 3e-3 for one of its own)."""

    if not 0 <= alpha <= 1 or temperature <= 0:
        raise UsageError(f"--alpha must be in [0, 1] and --temperature > 0 (got {alpha}, {temperature}).")
    built = student_layers is not None or student_width is not None
    if (student is None) == (not built):
        raise UsageError("Give the student: --student SOURCE, or --student-layers N and/or --student-width W.")
    out = Path(out)
    seed_everything(settings.seed)
    with progress.step(f"load teacher {teacher}"):
        teacher_model = load(teacher, inputs, teacher_weights)
    if tokenizer:
        teacher_model.tokenizer_dir = Path(tokenizer)
    if student_width is not None and is_lm(teacher_model):
        raise UsageError(
            "--student-width narrows an encoder's feed-forward block; a causal LM's gated feed-forward (three "
            "linear layers) is not narrowed yet.",
            hint="Build the student with --student-layers alone, or pass --student SOURCE.",
        )
    built_from = (student_layers, student_width)
    student_model, kept = _student(teacher_model, student, built_from, inputs, student_weights, progress)
    # a student that starts from pretrained weights (the teacher's layers, a Hugging Face folder) is fine-tuned;
    # one with weights of its own learns from scratch and takes a rate 30 times higher
    settings = settings.with_default_lr(1e-4 if kept is not None or student_model.kind == "hf" else 3e-3)
    fit = (_fit_lm if is_lm(teacher_model) else _fit_classifier)(
        teacher_model, student_model, data, val, alpha, temperature, settings, out, resume, progress
    )
    train, validation, run = fit["train"], fit["validation"], fit["run"]
    student_record = {"width": student_width, "parameters": fit["parameters"]}
    record: dict[str, Any] = {
        "method": "distill",
        "vocab_size": student_model.extra.get("vocab_size"),
        "alpha": alpha,
        "temperature": temperature,
        "settings": settings.__dict__,
        "teacher": {
            "source": str(teacher),
            "sha256": teacher_model.source_hash,
            "metrics": fit["teacher_metrics"],
            "parameters": _parameters(teacher_model),
        },
        "student": {"source": str(student) if student else None, "layers_kept": kept, **student_record},
        **_provenance(train, validation),
        "teacher_logits": fit["teacher_logits"],
        "metrics_before": fit["before"],
        "metrics_after": fit["after"],
        "history": run.history,
        "training": run.stopped,
    }
    _publish_student(out, student_model, fit.get("keras"), train, record)
    Checkpoints(out).remove()  # the folder PyTorch's and Keras' checkpoints share
    return CompressResult(out, record, run.history)


def _fit_classifier(
    teacher: Model,
    student: Model,
    data,
    val,
    alpha: float,
    temperature: float,
    settings: TrainSettings,
    out: Path,
    resume: bool,
    progress: Progress,
) -> dict[str, Any]:
    """Train a classifier (or any model with one output per sample) on the teacher's soft targets, cached."""
    train = read_training_data(data, teacher, need_labels=alpha > 0, what="distillation with --alpha > 0")
    soft, cache = teacher_logits(teacher, train, progress)
    _check_classes(soft, student, train)
    validation = read_training_data(val, teacher, need_labels=True, what="validation") if val else None
    rows, validation = split_validation(train, validation, settings)
    if len(rows) < len(train):
        train, soft = train.take(rows, "the part that trains"), soft[rows]
    soft_val = teacher_logits(teacher, validation, progress)[0] if validation else None
    val_labels = validation.labels if validation else None
    before = scores(source_logits(student, validation), val_labels) if validation else None

    def validate() -> dict[str, float] | None:  # after each epoch: the loss decides when to stop
        if validation is None:
            return None
        logits = source_logits(student, validation)
        loss = validation_loss(logits, val_labels, soft_val, alpha, temperature)
        return {"loss": round(loss, 6), **(scores(logits, val_labels) or {})}

    fit: dict[str, Any] = {"teacher_logits": cache, "before": before}
    if student.format == "keras":
        from edgekit.compress.keras_compress import KerasCheckpoints, distill_keras

        fit["keras"], run = distill_keras(
            student, soft, train, alpha, temperature, settings, KerasCheckpoints(out), resume, progress, validate
        )
        parameters = int(fit["keras"].count_params())
    else:
        checkpoints = Checkpoints(out)
        run = _train_torch(student, soft, train, alpha, temperature, settings, checkpoints, resume, progress, validate)
        parameters = sum(p.numel() for p in student.obj.parameters())
    return {
        **fit,
        "train": train,
        "validation": validation,
        "run": run,
        "parameters": parameters,
        "teacher_metrics": scores(soft_val, val_labels) if soft_val is not None else None,
        "after": scores(source_logits(student, validation), val_labels) if validation else None,
    }


def _fit_lm(
    teacher: Model,
    student: Model,
    data,
    val,
    alpha: float,
    temperature: float,
    settings: TrainSettings,
    out: Path,
    resume: bool,
    progress: Progress,
) -> dict[str, Any]:
    """Train a causal LM on the teacher's next-token distributions (edgekit.compress.distill_lm); the metrics are
    perplexities on the validation texts."""
    train = read_training_data(data, teacher, need_labels=False, what="distillation")
    validation = read_training_data(val, teacher, need_labels=False, what="validation") if val else None
    rows, validation = split_validation(train, validation, settings)
    if len(rows) < len(train):
        train = train.take(rows, "the part that trains")
    before = lm_scores(student, validation) if validation else None
    checkpoints = Checkpoints(out)
    run = train_lm(student, teacher, train, validation, alpha, temperature, settings, checkpoints, resume, progress)
    return {
        "train": train,
        "validation": validation,
        "run": run,
        "parameters": sum(p.numel() for p in student.obj.parameters()),
        "teacher_logits": "computed beside the student, per batch (too large to cache)",
        "teacher_metrics": lm_scores(teacher, validation) if validation else None,
        "before": before,
        "after": lm_scores(student, validation) if validation else None,
    }


def _provenance(train: Dataset, validation: Dataset | None) -> dict[str, Any]:
    """Where the training and validation samples came from, for compress.json."""

    def one(data: Dataset | None) -> dict[str, Any] | None:
        return {"path": data.source, "sha256": data.sha256, "samples": len(data)} if data else None

    return {"data": one(train), "val": one(validation)}


def _student(
    teacher: Model, student, built: tuple[int | None, float | None], inputs, weights, progress: Progress
) -> tuple[Model, list[int] | None]:
    """The student as given (--student), or built from the teacher's own layers (--student-layers and
    --student-width): with the layers kept, and the teacher's tokenizer where it has none of its own."""
    kept: list[int] | None = None
    if student is not None:
        with progress.step(f"load student {student}"):
            model = load(student, inputs or teacher.signature.inputs, weights)
    else:
        model, kept = student_from_layers(teacher, *built)
    if model.format not in ("torch", "keras"):
        raise UsageError(
            f"Distillation trains PyTorch and Keras students; {model.source} is {model.format}.",
            hint="Give the student as the model it was built from.",
        )
    model.tokenizer_dir = model.tokenizer_dir or teacher.tokenizer_dir
    return model, kept


def _publish_student(out: Path, student: Model, keras_trained, train: Dataset, record: dict[str, Any]) -> None:
    """Write the trained student in its own format (Keras, a Hugging Face folder, or torch weights)."""
    if keras_trained is not None:
        publish(out, lambda folder: save_keras(keras_trained, folder), record)
    elif student.kind == "hf":
        publish(out, lambda folder: save_hf(student.obj.model, student.tokenizer_dir, folder), record)
    else:
        publish(out, lambda folder: save_torch(student.obj, student, folder, train, record), record)


def _parameters(model: Model) -> int | None:
    if model.format == "torch":
        return sum(p.numel() for p in model.obj.parameters())
    keras_model = model.extra.get("keras_model")
    return int(keras_model.count_params()) if keras_model is not None else None
