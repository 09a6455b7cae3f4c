"""What every compress method shares: settings, seeded epochs with checkpoints and resume, validation,
and the output folder, which is itself a SOURCE (`edgekit export OUT`)."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
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
    """How the weights are (re)trained: epochs, learning rate, batch size, seed."""

    epochs: int = 3
    lr: float = 1e-3
    batch: int = 32
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 0 or self.batch < 1 or self.lr <= 0:
            raise UsageError(f"Training settings out of range: {self} (epochs ≥ 0, batch ≥ 1, lr > 0).")


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
    if need_labels:
        data.labels = class_indices(data.labels, data.source)
    return data


def epoch_batches(data: Dataset, batch: int, seed: int, epoch: int) -> Iterator[np.ndarray]:
    """Sample indices of one epoch's batches, shuffled by (seed, epoch) alone: a resumed run sees the same order."""
    order = np.random.default_rng([seed, epoch]).permutation(len(data))
    for start in range(0, len(order), batch):
        yield order[start : start + batch]


class Checkpoints:
    """One file per finished epoch beside OUT (`.OUT.checkpoints/`), written atomically; removed once OUT is
    published. An interrupted run leaves the last complete one, which `--resume` continues from."""

    def __init__(self, out: Path) -> None:
        self.folder = out.parent / f".{out.name}.checkpoints"

    def save(self, epoch: int, state: dict[str, Any]) -> None:
        import torch

        self.folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix="partial-", suffix=".pt.tmp")
        os.close(fd)
        torch.save({"epoch": epoch, **state}, tmp)
        os.replace(tmp, self.folder / f"epoch-{epoch:04d}.pt")

    def latest(self) -> dict[str, Any] | None:
        import torch

        files = sorted(self.folder.glob("epoch-*.pt")) if self.folder.is_dir() else []
        if not files:
            return None
        return torch.load(files[-1], map_location="cpu", weights_only=True)

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
) -> list[dict[str, Any]]:
    """The torch training loop every method uses: `step(indices)` returns the batch loss; seeds per epoch,
    a checkpoint per epoch (model, optimizer, history), and `resume` from the last one."""
    import torch

    history: list[dict[str, Any]] = []
    first = 0
    if resume:
        state = checkpoints.latest()
        if state is None:
            raise UsageError(f"--resume: no checkpoint in {checkpoints.folder}.", hint="Run without --resume.")
        if before_epoch:  # the structure the checkpoint was saved with (pruning masks)
            before_epoch(int(state["epoch"]))
        module.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        history, first = list(json.loads(state["history"])), int(state["epoch"]) + 1
        progress.info(f"  resumed after epoch {first} from {checkpoints.folder}")
    for epoch in range(first, settings.epochs):
        torch.manual_seed(settings.seed * 1000 + epoch)  # dropout and the like: the same with or without resume
        if before_epoch:
            before_epoch(epoch)
        set_mode(module, True)
        losses = []
        batches = list(epoch_batches(data, settings.batch, settings.seed, epoch))
        for indices in progress.track(
            batches, total=len(batches), label=f"{label} epoch {epoch + 1}/{settings.epochs}"
        ):
            optimizer.zero_grad()
            loss = step(indices)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
        set_mode(module, False)
        history.append(end_epoch(progress, label, epoch, settings.epochs, float(np.mean(losses)), validate))
        checkpoints.save(
            epoch, {"model": module.state_dict(), "optimizer": optimizer.state_dict(), "history": json.dumps(history)}
        )
    return history


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
) -> list[dict[str, Any]]:
    """Cross-entropy training of a torch classifier (or exported graph) on the labelled `train`, AdamW at the
    settings' rate, through train_epochs; `validation`, when given, is scored after every epoch."""
    import torch

    from edgekit.sources.torch_source import flatten_outputs

    labels = torch.from_numpy(train.labels.astype(np.int64))
    torch.manual_seed(settings.seed)
    optimizer = torch.optim.AdamW(module.parameters(), lr=settings.lr)

    def step(idx: np.ndarray):
        logits = flatten_outputs(module(*torch_feed(train, idx, model)))[0]
        return torch.nn.functional.cross_entropy(logits, labels[idx])

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
        validate=(lambda: scores(torch_logits(module, validation, model), validation.labels))
        if validation is not None
        else None,
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
    from edgekit.runners.source import source_runner

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
