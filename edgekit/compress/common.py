"""What every compress method shares: settings, seeded epochs with checkpoints and resume, validation,
and the output folder, which is itself a SOURCE (`edgekit export OUT`)."""

from __future__ import annotations

import gzip
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.data import Dataset, class_indices, read_data
from edgekit.errors import DataError, UsageError
from edgekit.progress import Progress
from edgekit.sources import COMPRESS_FILE
from edgekit.sources.base import Model


@dataclass(frozen=True)
class TrainSettings:
    """How the weights are (re)trained. `epochs` is the most it trains: with `patience` > 0 it stops once the
    validation loss has not improved for that many epochs (validation: --val, else `val_fraction` of the
    training data held out), halving the learning rate after every second epoch that did not improve it.
    `lr` None: the method's own default (see with_default_lr)."""

    epochs: int = 100
    lr: float | None = None
    batch: int = 32
    seed: int = 0
    patience: int = 5
    val_fraction: float = 0.1

    def __post_init__(self) -> None:
        bad_lr = self.lr is not None and self.lr <= 0
        if self.epochs < 0 or self.batch < 1 or bad_lr or self.patience < 0 or not 0 < self.val_fraction < 0.5:
            raise UsageError(
                f"Training settings out of range: {self} "
                "(epochs ≥ 0, batch ≥ 1, lr > 0, patience ≥ 0, 0 < val_fraction < 0.5)."
            )

    def with_epochs(self, epochs: int) -> TrainSettings:
        return replace(self, epochs=epochs)

    def with_default_lr(self, lr: float) -> TrainSettings:
        """These settings with `lr` where none was given (each method knows the rate that suits it)."""
        return self if self.lr is not None else replace(self, lr=lr)

    @property
    def rate(self) -> float:
        """The learning rate (once the method has filled in its default)."""
        assert self.lr is not None, "with_default_lr was not called"
        return self.lr


MIN_HELD_OUT = 8  # fewer validation samples than this say nothing about when to stop


def split_validation(data: Dataset, val: Dataset | None, settings: TrainSettings) -> tuple[np.ndarray, Dataset | None]:
    """Which samples of `data` train (indices) and the validation set: `val` when given; else, when training
    stops on convergence, `settings.val_fraction` of `data` held out (seeded); else none (every epoch runs)."""
    everything = np.arange(len(data))
    if val is not None or settings.patience == 0 or settings.epochs == 0:
        return everything, val
    held = round(len(data) * settings.val_fraction)
    if held < MIN_HELD_OUT:
        raise DataError(
            f"{data.source} has {len(data)} samples: holding out {settings.val_fraction:.0%} to know when training "
            f"has converged leaves {held}, and it needs at least {MIN_HELD_OUT}.",
            hint="Give validation data with --val, more training data, or --patience 0 to run every epoch.",
        )
    order = np.random.default_rng([settings.seed, 7]).permutation(len(data))
    return np.sort(order[held:]), data.take(np.sort(order[:held]), "held out for validation")


def distillation_loss(student, teacher, labels, alpha: float, temperature: float):
    """The loss on torch tensors (student and teacher logits, integer labels or None when alpha is 0)."""
    import torch.nn.functional as F

    t = temperature
    soft = F.kl_div(F.log_softmax(student / t, dim=-1), F.softmax(teacher / t, dim=-1), reduction="batchmean")
    loss = (1 - alpha) * t * t * soft
    if alpha > 0:
        loss = loss + alpha * F.cross_entropy(student, labels)
    return loss


def validation_loss(
    logits: np.ndarray, labels: np.ndarray | None, soft: np.ndarray | None = None, alpha: float = 1.0, t: float = 1.0
) -> float:
    """The training loss on a validation set, from its logits: α·CE(labels) + (1−α)·T²·KL(soft ‖ logits), the
    same as distillation_loss (α = 1: plain cross-entropy), in numpy for every framework."""
    from scipy.special import log_softmax

    loss = 0.0
    if soft is not None and alpha < 1:
        log_p_teacher, log_p_student = log_softmax(soft / t, axis=-1), log_softmax(logits / t, axis=-1)
        kl = np.sum(np.exp(log_p_teacher) * (log_p_teacher - log_p_student), axis=-1).mean()
        loss += (1 - alpha) * t * t * float(kl)
    if labels is not None and alpha > 0:
        loss += alpha * float(-log_softmax(logits, axis=-1)[np.arange(len(labels)), labels].mean())
    return loss


@dataclass
class Convergence:
    """Watches the validation loss after each epoch: remembers the best epoch, halves the learning rate after
    every second epoch that did not improve it, and says when `patience` such epochs in a row mean training is done.
    Epochs before `start` (a pruning schedule still rising) neither count nor can be the best."""

    settings: TrainSettings
    start: int = 0
    best_epoch: int | None = None
    best_loss: float = math.inf
    since_best: int = 0
    plateaus: int = 0

    def update(self, entry: dict[str, Any]) -> None:
        """Take one history entry (epoch numbered from 1, `val.loss` when there is validation)."""
        loss = (entry.get("val") or {}).get("loss")
        if loss is None or entry["epoch"] - 1 < self.start:
            return
        if loss < self.best_loss - 1e-4:
            self.best_epoch, self.best_loss, self.since_best = entry["epoch"] - 1, loss, 0
        else:
            self.since_best += 1
            self.plateaus += 1

    @property
    def lr(self) -> float:
        return self.settings.rate * 0.5 ** (self.plateaus // 2)

    def epoch_to_restore(self, epochs_run: int) -> int | None:
        """The best epoch when a later one ended training (its weights are what training leaves), else None."""
        return self.best_epoch if self.best_epoch is not None and self.best_epoch != epochs_run - 1 else None

    @property
    def done(self) -> bool:
        return self.settings.patience > 0 and self.since_best >= self.settings.patience

    def summary(self, history: list[dict[str, Any]], restored: bool) -> dict[str, Any]:
        """How training stopped, for the record; `warning` when it stopped while still improving."""
        run, most = len(history), self.settings.epochs
        out: dict[str, Any] = {"epochs_run": run, "max_epochs": most, "patience": self.settings.patience}
        if self.best_epoch is not None:
            out |= {"best_epoch": self.best_epoch + 1, "best_val_loss": round(self.best_loss, 6), "restored": restored}
        losses = [e["loss"] for e in history]
        if self.done:
            out["stopped"] = f"converged: no better validation loss in {self.since_best} epochs after the best"
        elif self.best_epoch is not None and self.best_epoch == run - 1 and run >= 2:
            out["stopped"] = "maximum epochs"
            out["warning"] = (
                f"training stopped at its maximum of {most} epochs while the validation loss was still falling; "
                "more epochs (--epochs) may gain more"
            )
        elif self.best_epoch is None and len(losses) >= 2 and losses[-1] < 0.99 * losses[-2]:
            out["stopped"] = "maximum epochs (no validation)"
            out["warning"] = (
                f"training ran its {run} epochs without validation and the loss was still falling "
                f"({losses[-2]:.4f} -> {losses[-1]:.4f}); more epochs (--epochs) may gain more"
            )
        else:
            out["stopped"] = "maximum epochs"
        return out


@dataclass
class Trained:
    """A training run's per-epoch history and how it stopped."""

    history: list[dict[str, Any]]
    stopped: dict[str, Any]


@dataclass
class CompressResult:
    """What a compress command wrote and measured."""

    out: Path
    record: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)


def seed_everything(seed: int) -> None:
    """Seed what decides a run (a factory's initial weights included): the same seed gives the same result."""
    import random

    from edgekit._lazy import available

    random.seed(seed)
    np.random.seed(seed)
    if available("torch"):
        import torch

        torch.manual_seed(seed)


def read_training_data(path: str | Path, model: Model, need_labels: bool, what: str) -> Dataset:
    data = read_data(path, model.signature, model.tokenizer_dir)
    if need_labels and data.labels is None:
        raise DataError(
            f"{what} needs labels, and {data.source} has none.",
            hint="Give a .npz with a 'labels' array or a CSV/JSONL with a 'label' column"
            + (", or pass --alpha 0 to learn from the teacher's soft targets only." if "distill" in what else "."),
        )
    if need_labels and data.labels is not None:
        data.labels = class_indices(data.labels, data.source)
    return data


def epoch_batches(samples: int, batch: int, seed: int, epoch: int) -> Iterator[np.ndarray]:
    """Positions (0..samples-1) of one epoch's batches, shuffled by (seed, epoch) alone: a resumed run sees the
    same order."""
    order = np.random.default_rng([seed, epoch]).permutation(samples)
    for start in range(0, len(order), batch):
        yield order[start : start + batch]


class Checkpoints:
    """One file per finished epoch beside OUT (`.OUT.checkpoints/`), written atomically; removed once OUT is
    published. An interrupted run leaves the last complete one, which `--resume` continues from."""

    def __init__(self, out: Path) -> None:
        self.folder = out.parent / f".{out.name}.checkpoints"

    def save(self, epoch: int, state: dict[str, Any], keep: int | None = None) -> None:
        """Write `epoch`'s state; of the earlier ones only epoch `keep` (the best so far) stays."""
        import torch

        self.folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix="partial-", suffix=".pt.tmp")
        os.close(fd)
        torch.save({"epoch": epoch, **state}, tmp)
        os.replace(tmp, self.path(epoch))
        self.forget(keep={epoch, keep}, pattern="epoch-*.pt")

    def path(self, epoch: int) -> Path:
        return self.folder / f"epoch-{epoch:04d}.pt"

    def forget(self, keep: set[int | None], pattern: str) -> None:
        for old in self.folder.glob(pattern):
            if int(old.name.split("-")[1].split(".")[0]) not in keep:
                shutil.rmtree(old) if old.is_dir() else old.unlink()

    def latest(self) -> dict[str, Any] | None:
        files = sorted(self.folder.glob("epoch-*.pt")) if self.folder.is_dir() else []
        return self.load(files[-1]) if files else None

    @staticmethod
    def load(path: Path) -> dict[str, Any]:
        import torch

        return torch.load(path, map_location="cpu", weights_only=True)

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def train_epochs(
    module,
    optimizer,
    step: Callable[[np.ndarray], Any],
    data: Dataset,
    settings: TrainSettings,
    checkpoints: Checkpoints,
    resume: bool,
    progress: Progress,
    label: str,
    before_epoch: Callable[[int], None] | None = None,
    set_mode: Callable[[Any, bool], Any] = lambda module, training: module.train(training),
    validate: Callable[[], dict[str, float] | None] | None = None,
    start: int = 0,
) -> Trained:
    """The torch training loop every method uses: `step(batch indices into data)` returns the batch loss.
    Seeded per epoch, a checkpoint per epoch (model, optimizer, history), `resume` from the last one; stops on
    convergence of `validate()["loss"]` (see Convergence) and ends with the best epoch's weights."""
    import torch

    history: list[dict[str, Any]] = []
    first = 0
    convergence = Convergence(settings, start)
    if resume:
        state = checkpoints.latest()
        if state is None:
            raise UsageError(f"--resume: no checkpoint in {checkpoints.folder}.", hint="Run without --resume.")
        if before_epoch:  # the structure the checkpoint was saved with (pruning masks)
            before_epoch(int(state["epoch"]))
        module.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        history, first = list(json.loads(state["history"])), int(state["epoch"]) + 1
        for entry in history:
            convergence.update(entry)
        progress.info(f"  resumed after epoch {first} from {checkpoints.folder}")
    for epoch in range(first, settings.epochs):
        if convergence.done:
            break
        torch.manual_seed(settings.seed * 1000 + epoch)  # dropout and the like: the same with or without resume
        if before_epoch:
            before_epoch(epoch)
        for group in optimizer.param_groups:
            group["lr"] = convergence.lr
        set_mode(module, True)
        losses = []
        batches = list(epoch_batches(len(data), settings.batch, settings.seed, epoch))
        for batch in progress.track(batches, total=len(batches), label=f"{label} epoch {epoch + 1}/{settings.epochs}"):
            optimizer.zero_grad()
            loss = step(batch)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
        set_mode(module, False)
        history.append(end_epoch(progress, label, epoch, settings.epochs, float(np.mean(losses)), validate))
        convergence.update(history[-1])
        checkpoints.save(
            epoch,
            {"model": module.state_dict(), "optimizer": optimizer.state_dict(), "history": json.dumps(history)},
            keep=convergence.best_epoch,
        )
    best = convergence.epoch_to_restore(len(history))
    if best is not None:
        module.load_state_dict(checkpoints.load(checkpoints.path(best))["model"])
        set_mode(module, False)
    return finish_training(convergence, history, best is not None, progress, label)


def finish_training(
    convergence: Convergence, history: list[dict[str, Any]], restored: bool, progress: Progress, label: str
) -> Trained:
    """Say how training stopped (a warning when it stopped while still improving)."""
    stopped = convergence.summary(history, restored)
    best = f", best epoch {stopped['best_epoch']} kept" if restored else ""
    progress.info(f"  {label}: {stopped['stopped']} after {stopped['epochs_run']} epochs{best}")
    if "warning" in stopped:
        progress.warn(f"{label}: {stopped['warning']}")
    return Trained(history, stopped)


def labelled_split(
    data: str | Path, val: str | Path | None, model: Model, settings: TrainSettings, what: str
) -> tuple[Dataset, Dataset | None]:
    """Labelled training data and its validation set (--val, or a part held out; see split_validation)."""
    train = read_training_data(data, model, need_labels=True, what=what)
    validation = read_training_data(val, model, need_labels=True, what="validation") if val else None
    rows, validation = split_validation(train, validation, settings)
    return (train if len(rows) == len(train) else train.take(rows, "the part that trains")), validation


def fit_classifier(
    module,
    model: Model,
    train: Dataset,
    validation: Dataset | None,
    settings: TrainSettings,
    checkpoints: Checkpoints,
    resume: bool,
    progress: Progress,
    label: str = "fine-tune",
    before_epoch: Callable[[int], None] | None = None,
    set_mode: Callable[[Any, bool], Any] | None = None,
    start: int = 0,
) -> Trained:
    """Cross-entropy training of a torch classifier (or exported graph) on the labelled `train`, AdamW at the
    settings' rate, through train_epochs; `validation`, when given, is scored after every epoch and decides
    when to stop."""
    import torch

    from edgekit.sources.torch_source import flatten_outputs

    assert train.labels is not None, "training data is read with its labels (read_training_data)"
    labels = torch.from_numpy(train.labels.astype(np.int64))
    torch.manual_seed(settings.seed)
    optimizer = torch.optim.AdamW(module.parameters(), lr=settings.rate)

    def step(idx: np.ndarray):
        logits = flatten_outputs(module(*torch_feed(train, idx, model)))[0]
        return torch.nn.functional.cross_entropy(logits, labels[idx])

    def validate() -> dict[str, float] | None:
        assert validation is not None and validation.labels is not None
        logits = torch_logits(module, validation, model)
        return {
            "loss": round(validation_loss(logits, validation.labels), 6),
            **(scores(logits, validation.labels) or {}),
        }

    return train_epochs(
        module,
        optimizer,
        step,
        train,
        settings,
        checkpoints,
        resume,
        progress,
        label,
        before_epoch,
        **({"set_mode": set_mode} if set_mode else {}),
        validate=validate if validation is not None else None,
        start=start,
    )


def end_epoch(
    progress: Progress,
    label: str,
    epoch: int,
    epochs: int,
    loss: float,
    validate: Callable[[], dict[str, float] | None] | None,
) -> dict[str, Any]:
    """One epoch's history entry (loss, and the validation metrics when there is validation data), shown."""
    entry: dict[str, Any] = {"epoch": epoch + 1, "loss": round(loss, 6)}
    metrics = validate() if validate else None
    if metrics:
        entry["val"] = metrics
    shown = ", ".join(f"val {k} {v:.4f}" for k, v in (metrics or {}).items())
    progress.info(f"  {label} epoch {epoch + 1}/{epochs}: loss {loss:.4f}" + (f", {shown}" if shown else ""))
    return entry


def torch_feed(data: Dataset, indices: np.ndarray, model: Model) -> list:
    import torch

    return [torch.from_numpy(np.ascontiguousarray(data.arrays[s.name][indices])) for s in model.signature.inputs]


def torch_logits(module, data: Dataset, model: Model, batch: int = 64) -> np.ndarray:
    """The first output of a torch module (or exported graph) over `data`, in the mode the caller left it in
    (loaders and train_epochs leave eval; an exported graph rejects .eval())."""
    import torch

    from edgekit.sources.torch_source import flatten_outputs

    out = []
    with torch.inference_mode():
        for start in range(0, len(data), batch):
            idx = np.arange(start, min(start + batch, len(data)))
            out.append(flatten_outputs(module(*torch_feed(data, idx, model)))[0].float().numpy())
    return np.concatenate(out)


def source_logits(model: Model, data: Dataset) -> np.ndarray:
    """A loaded model's first output over `data`, run in its own framework (PyTorch, Keras, ONNX alike)."""
    from edgekit.dispatch import source_runner

    with source_runner(model) as runner:
        return np.concatenate([next(iter(runner.infer(feed, check=False).values())) for feed in data.batches(64)])


def scores(logits: np.ndarray, labels: np.ndarray | None) -> dict[str, float] | None:
    """Accuracy and macro-F1 of class scores (None without labels)."""
    if labels is None:
        return None
    from edgekit.evaluation.metrics import classification_metrics

    metrics = classification_metrics(logits, labels)
    return {k: round(float(metrics[k]), 4) for k in ("accuracy", "f1_macro") if k in metrics}


def output_layer(module, classes: int) -> list:
    """The classifier of a torch module: its last Linear layer with one output per class (none: [])."""
    import torch

    linears = [m for m in module.modules() if isinstance(m, torch.nn.Linear) and m.out_features == classes]
    return linears[-1:] if linears else []


def parameter_count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def file_sizes(folder: Path, name: str) -> dict[str, int]:
    """A weights file's bytes, raw and gzip-compressed (zeros from pruning compress; the raw file does not shrink)."""
    data = (folder / name).read_bytes()
    return {"raw_bytes": len(data), "gzip_bytes": len(gzip.compress(data, compresslevel=6))}


def publish(out: Path, write: Callable[[Path], str], record: dict[str, Any]) -> None:
    """Write the model through `write(folder) -> its model entry` into a staging folder beside OUT, add
    compress.json, then move it into place: OUT is never half-written. An earlier compress output at OUT
    is replaced; any other existing folder is refused."""
    if out.exists():
        previous = out.is_dir() and (out / COMPRESS_FILE).exists()
        if not previous and not (out.is_dir() and not any(out.iterdir())):
            raise UsageError(f"{out} exists and is not an edgekit compress output; choose another -o.")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        entry = write(staging)  # may add to the record (sizes, the input specs it saved with)
        record = {**record, "source": entry}
        (staging / COMPRESS_FILE).write_text(json.dumps(record, indent=2, default=str) + "\n")
        if out.exists():
            shutil.rmtree(out)
        os.replace(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
