"""Keras pruning and quantization-aware training through tensorflow-model-optimization (tf_keras models only)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from edgekit._lazy import require
from edgekit.compress.common import (
    Checkpoints,
    CompressResult,
    Convergence,
    Trained,
    TrainSettings,
    end_epoch,
    finish_training,
    labelled_split,
    publish,
    scores,
    validation_loss,
)
from edgekit.compress.save import save_keras
from edgekit.data import Dataset
from edgekit.errors import UsageError, first_line
from edgekit.progress import Progress
from edgekit.sources.base import Model


def _tf_keras_model(source: Model, what: str):
    model = source.extra.get("keras_model")
    if source.kind != "tf-keras" or model is None:
        raise UsageError(
            f"{what} uses tensorflow-model-optimization, which works on tf_keras models only; "
            f"{source.source} is a {source.kind} model.",
            hint="Build and save the model with tf_keras (import tf_keras as keras; model.save('m.h5')), "
            "or compress a PyTorch model.",
        )
    return model


def _xy(model: Model, data: Dataset):
    names = model.signature.input_names
    x = data.arrays[names[0]] if len(names) == 1 else [data.arrays[n] for n in names]
    return x, data.labels


def _from_logits(keras_model) -> bool:
    activation = getattr(keras_model.layers[-1], "activation", None)
    return getattr(activation, "__name__", "") != "softmax"


def _compile(tf_keras, model, settings: TrainSettings, from_logits: bool) -> None:
    model.compile(
        optimizer=tf_keras.optimizers.Adam(settings.rate),
        loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits),
    )


def _scores(keras_model, source: Model, data: Dataset) -> dict[str, float] | None:
    x, y = _xy(source, data)
    return scores(np.asarray(keras_model.predict(x, batch_size=256, verbose=0)), y)


def _validator(keras_model, source: Model, validation: Dataset | None):
    """After each epoch: the cross-entropy that decides when to stop, and the scores (None without validation)."""
    if validation is None:
        return None

    def validate() -> dict[str, float]:
        x, y = _xy(source, validation)
        out = np.asarray(keras_model.predict(x, batch_size=256, verbose=0))
        logits = out if _from_logits(keras_model) else np.log(np.clip(out, 1e-12, None))
        return {"loss": round(validation_loss(logits, y), 6), **(scores(out, y) or {})}

    return validate


class KerasCheckpoints(Checkpoints):
    """The same folder as PyTorch checkpoints, holding one TensorFlow checkpoint (model and optimizer) per
    finished epoch in `epoch-NNNN/`, each renamed into place when complete."""

    def save_keras(self, tf, model, optimizer, epoch: int, history: list[dict[str, Any]], keep: int | None) -> None:
        """Write `epoch`'s state; of the earlier ones only epoch `keep` (the best so far) stays."""
        import json
        import shutil
        import tempfile

        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix="partial-", dir=self.folder))
        tf.train.Checkpoint(model=model, optimizer=optimizer).write(str(tmp / "state"))
        (tmp / "history.json").write_text(json.dumps(history))
        final = self.folder / f"epoch-{epoch:04d}"
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        self.forget(keep={epoch, keep}, pattern="epoch-*[0-9]")

    def after_epoch(self, tf, model, optimizer, convergence: Convergence, history: list[dict[str, Any]]) -> None:
        """Note the epoch just ended (the last of `history`), checkpoint it, and set the next epoch's rate."""
        convergence.update(history[-1])
        self.save_keras(tf, model, optimizer, len(history) - 1, history, convergence.best_epoch)
        optimizer.learning_rate = convergence.lr

    def finish(
        self, tf, model, convergence: Convergence, history: list[dict[str, Any]], progress: Progress, label: str
    ) -> Trained:
        """Load the best epoch's weights when a later one ended training, and say how it stopped."""
        best = convergence.epoch_to_restore(len(history))
        if best is not None:
            tf.train.Checkpoint(model=model).read(str(self.folder / f"epoch-{best:04d}" / "state")).expect_partial()
        return finish_training(convergence, history, best is not None, progress, label)

    def restore(self, tf, model, optimizer, convergence: Convergence) -> tuple[int, list[dict[str, Any]]]:
        """Load the last complete epoch into model and optimizer, replay its history into `convergence`;
        returns (next epoch, history so far)."""
        import json

        done = (
            sorted(p for p in self.folder.glob("epoch-*") if (p / "history.json").is_file())
            if self.folder.is_dir()
            else []
        )
        if not done:
            raise UsageError(f"--resume: no checkpoint in {self.folder}.", hint="Run without --resume.")
        optimizer.build(model.trainable_variables)  # slots exist before they are read back
        tf.train.Checkpoint(model=model, optimizer=optimizer).read(str(done[-1] / "state")).assert_consumed()
        history = json.loads((done[-1] / "history.json").read_text())
        for entry in history:
            convergence.update(entry)
        optimizer.learning_rate = convergence.lr
        return int(done[-1].name.split("-")[1]) + 1, history


def _fit(
    model,
    source: Model,
    train: Dataset,
    settings: TrainSettings,
    progress: Progress,
    label: str,
    callbacks: list,
    checkpoints: KerasCheckpoints,
    resume: bool,
    validate=None,
    start: int = 0,
) -> Trained:
    """model.fit one epoch at a time, in the batch order of common.epoch_batches (seeded by epoch, so a
    resumed run sees the same order), with a checkpoint after each epoch, until convergence (Convergence)."""
    from edgekit.sources.keras_source import quiet_tf

    tf = quiet_tf("Training a Keras model")
    x, y = _xy(source, train)
    history: list[dict[str, Any]] = []
    first = 0
    convergence = Convergence(settings, start)
    if resume:
        first, history = checkpoints.restore(tf, model, model.optimizer, convergence)
        progress.info(f"  resumed after epoch {first} from {checkpoints.folder}")
    for epoch in range(first, settings.epochs):
        if convergence.done:
            break
        order = np.random.default_rng([settings.seed, epoch]).permutation(len(y))
        with progress.step(f"{label} epoch {epoch + 1}/{settings.epochs}"):
            fit = model.fit(
                x[order] if not isinstance(x, list) else [a[order] for a in x],
                y[order],
                batch_size=settings.batch,
                epochs=epoch + 1,
                initial_epoch=epoch,
                shuffle=False,
                verbose=0,
                callbacks=callbacks,
            )
        history.append(end_epoch(progress, label, epoch, settings.epochs, float(fit.history["loss"][-1]), validate))
        checkpoints.after_epoch(tf, model, model.optimizer, convergence, history)
    return checkpoints.finish(tf, model, convergence, history, progress, label)


def kernel_sparsity(keras_model) -> float:
    """Fraction of zeros over the kernels of Dense and convolution layers."""
    kernels = [w.numpy() for layer in keras_model.layers for w in layer.weights if "kernel" in w.name]
    total = sum(k.size for k in kernels)
    return float(sum(int((k == 0).sum()) for k in kernels) / total) if total else 0.0


def prune_keras(
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
    """Magnitude pruning with tfmot's prune_low_magnitude: the schedule's last pruning step falls at the start
    of epoch `ramp` (so the target is reached, not approached), training goes on at the target until it
    converges, then strip_pruning before saving."""
    if method != "magnitude":
        raise UsageError(
            "Structured pruning of Keras models is not available; use --method magnitude, "
            "or prune the PyTorch version of the model."
        )
    tf_keras = require("tf_keras", "Pruning a Keras model")
    tfmot = require("tensorflow_model_optimization", "Pruning a Keras model")
    keras_model = _tf_keras_model(source, "Keras pruning")
    fit_settings = settings.with_epochs(max(settings.epochs, 1))
    train, validation = labelled_split(data, val, source, fit_settings, "Fine-tuning after pruning")
    scored = validation or train
    tf_keras.utils.set_random_seed(settings.seed)
    before = _scores(keras_model, source, scored)
    steps = math.ceil(len(train) / settings.batch)
    ramp = min(ramp, fit_settings.epochs)
    if schedule == "one-shot" or ramp == 1:
        sched = tfmot.sparsity.keras.ConstantSparsity(sparsity, begin_step=0, frequency=steps)
    else:  # rise over the ramp's epochs but its last, pruning once per epoch, and reach the target at its start
        sched = tfmot.sparsity.keras.PolynomialDecay(
            0.0, sparsity, begin_step=0, end_step=steps * (ramp - 1), frequency=steps
        )
    try:
        pruned = tfmot.sparsity.keras.prune_low_magnitude(keras_model, pruning_schedule=sched)
    except Exception as e:  # tfmot names the layer it cannot wrap
        raise UsageError(f"tensorflow-model-optimization cannot prune {source.source}: {first_line(e)}") from None
    _compile(tf_keras, pruned, settings, _from_logits(keras_model))
    checkpoints = KerasCheckpoints(out)
    run = _fit(
        pruned,
        source,
        train,
        fit_settings,
        progress,
        "prune",
        [tfmot.sparsity.keras.UpdatePruningStep()],
        checkpoints,
        resume,
        _validator(pruned, source, validation),
        start=0 if schedule == "one-shot" else ramp - 1,
    )
    stripped = tfmot.sparsity.keras.strip_pruning(pruned)
    record: dict[str, Any] = {
        "method": "prune",
        "pruning": "magnitude",
        "schedule": schedule,
        "ramp_epochs": ramp,
        "sparsity_target": sparsity,
        "sparsity_reached": round(kernel_sparsity(stripped), 4),
        "settings": fit_settings.__dict__,
        "tool": f"tensorflow-model-optimization {tfmot.__version__}",
        "parameters_before": int(keras_model.count_params()),
        "parameters_after": int(stripped.count_params()),
        "source": {"path": source.source, "sha256": source.source_hash},
        "data": {"path": train.source, "sha256": train.sha256, "samples": len(train)},
        "metrics_before": before,
        "metrics_after": _scores(stripped, source, scored),
        "history": run.history,
        "training": run.stopped,
    }
    publish(out, lambda folder: save_keras(stripped, folder), record)
    checkpoints.remove()
    return CompressResult(out, record, run.history)


def qat_keras(
    source: Model, data, out: Path, val, settings: TrainSettings, resume: bool, progress: Progress
) -> CompressResult:
    """tfmot's quantize_model (fake quantization in training), then a SavedModel the TFLite converter turns
    into int8 with the ranges learned in training."""
    tf_keras = require("tf_keras", "Quantization-aware training of a Keras model")
    tfmot = require("tensorflow_model_optimization", "Quantization-aware training of a Keras model")
    keras_model = _tf_keras_model(source, "Keras quantization-aware training")
    train, validation = labelled_split(data, val, source, settings, "Quantization-aware training")
    scored = validation or train
    tf_keras.utils.set_random_seed(settings.seed)
    before = _scores(keras_model, source, scored)
    try:
        qat = tfmot.quantization.keras.quantize_model(keras_model)
    except Exception as e:
        raise UsageError(f"tensorflow-model-optimization cannot quantize {source.source}: {first_line(e)}") from None
    _compile(tf_keras, qat, settings, _from_logits(keras_model))
    checkpoints = KerasCheckpoints(out)
    run = _fit(
        qat, source, train, settings, progress, "qat", [], checkpoints, resume, _validator(qat, source, validation)
    )
    record: dict[str, Any] = {
        "method": "qat",
        "tool": f"tensorflow-model-optimization {tfmot.__version__} quantize_model",
        "settings": settings.__dict__,
        "source": {"path": source.source, "sha256": source.source_hash},
        "data": {"path": train.source, "sha256": train.sha256, "samples": len(train)},
        "metrics_before": before,
        "metrics_after_fake_quant": _scores(qat, source, scored),
        "history": run.history,
        "training": run.stopped,
        "export_with": "tflite-int8 (the converter keeps the ranges learned in training)",
    }
    publish(out, lambda folder: save_keras(qat, folder), record)
    checkpoints.remove()
    return CompressResult(out, record, run.history)


def distill_keras(
    student: Model,
    soft: np.ndarray,
    train: Dataset,
    alpha: float,
    temperature: float,
    settings: TrainSettings,
    checkpoints: KerasCheckpoints,
    resume: bool,
    progress: Progress,
    validate=None,
) -> tuple[Any, Trained]:
    """Train a Keras student (Keras 3 or tf_keras) on the teacher's soft targets with a GradientTape loop,
    the same loss and the same seeded batch order as the PyTorch loop."""
    from edgekit.compress.common import epoch_batches
    from edgekit.sources.keras_source import quiet_tf

    tf = quiet_tf("Distilling into a Keras student")
    keras_model = student.extra.get("keras_model")
    if keras_model is None:
        raise UsageError(
            f"{student.source} is a SavedModel: its weights cannot be trained here.",
            hint="Give the Keras student as a .keras or .h5 file.",
        )
    flavour = "tf_keras" if type(keras_model).__module__.startswith("tf_keras") else "keras"
    keras = require(flavour, "Distilling into a Keras student")
    keras.utils.set_random_seed(settings.seed)
    optimizer = keras.optimizers.Adam(settings.rate)
    x, labels = _xy(student, train)
    t = temperature
    history: list[dict[str, Any]] = []
    first = 0
    convergence = Convergence(settings)
    if resume:
        first, history = checkpoints.restore(tf, keras_model, optimizer, convergence)
        progress.info(f"  resumed after epoch {first} from {checkpoints.folder}")
    for epoch in range(first, settings.epochs):
        if convergence.done:
            break
        losses = []
        for idx in epoch_batches(len(train), settings.batch, settings.seed, epoch):
            with tf.GradientTape() as tape:
                logits = keras_model(x[idx], training=True)
                p_teacher = tf.nn.softmax(soft[idx] / t, axis=-1)
                log_p_student = tf.nn.log_softmax(logits / t, axis=-1)
                kl = tf.reduce_mean(tf.reduce_sum(p_teacher * (tf.math.log(p_teacher + 1e-12) - log_p_student), -1))
                loss = (1 - alpha) * t * t * kl
                if alpha > 0:
                    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels[idx], logits=logits)
                    loss = loss + alpha * tf.reduce_mean(ce)
            variables = keras_model.trainable_variables
            optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
            losses.append(float(loss))
        history.append(end_epoch(progress, "distill", epoch, settings.epochs, float(np.mean(losses)), validate))
        checkpoints.after_epoch(tf, keras_model, optimizer, convergence, history)
    return keras_model, checkpoints.finish(tf, keras_model, convergence, history, progress, "distill")
