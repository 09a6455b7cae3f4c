"""Compression on real digits: distillation, magnitude and structured pruning, low-rank factorization, Keras QAT,
resume, bad input."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import artifact_accuracy, run_cli

from edgekit.compress import TrainSettings, distill, distillation_loss, prune, prune_vocabulary, qat
from edgekit.errors import UsageError
from edgekit.exporter import export
from edgekit.spec import parse_input_spec

INPUT = (parse_input_spec("image:float32:batchx1x8x8"),)


@pytest.fixture(scope="module")
def npz(digits, tmp_path_factory):
    x_train, y_train, x_test, y_test = digits
    tmp = tmp_path_factory.mktemp("compress-data")
    np.savez(tmp / "train.npz", image=x_train, labels=y_train)
    np.savez(tmp / "test.npz", image=x_test, labels=y_test)
    np.savez(tmp / "unlabelled.npz", image=x_train)
    return tmp


def test_loss_matches_a_hand_computation():
    import torch

    s = np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]])
    t = np.array([[1.5, 1.0, -0.5], [0.0, -1.0, 2.0]])
    labels = np.array([0, 2])
    alpha, temp = 0.3, 2.0

    def softmax(z):
        e = np.exp(z - z.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    p_t, p_s = softmax(t / temp), softmax(s / temp)
    kl = np.mean(np.sum(p_t * (np.log(p_t) - np.log(p_s)), axis=-1))  # per sample, then the batch mean
    ce = np.mean(-np.log(softmax(s)[np.arange(2), labels]))
    expected = alpha * ce + (1 - alpha) * temp**2 * kl
    got = distillation_loss(torch.tensor(s), torch.tensor(t), torch.tensor(labels), alpha, temp)
    assert float(got) == pytest.approx(expected, rel=1e-9)
    soft_only = distillation_loss(torch.tensor(s), torch.tensor(t), None, 0.0, temp)
    assert float(soft_only) == pytest.approx(temp**2 * kl, rel=1e-9)


def _epochs(val_losses, losses=None):
    losses = losses or [1.0 / (i + 1) for i in range(len(val_losses))]
    return [{"epoch": i + 1, "loss": loss, "val": {"loss": v}} for i, (loss, v) in enumerate(zip(losses, val_losses))]


def test_convergence_stops_after_patience_halves_the_rate_and_keeps_the_best():
    from edgekit.compress.common import Convergence

    watch = Convergence(TrainSettings(epochs=30, lr=1e-3, patience=2))
    history = _epochs([1.0, 0.5, 0.6, 0.55])
    for entry in history[:3]:
        watch.update(entry)
        assert not watch.done
    assert watch.best_epoch == 1 and watch.lr == pytest.approx(1e-3)  # one epoch without improvement
    watch.update(history[3])
    assert watch.done and watch.lr == pytest.approx(5e-4)  # two: the rate halves
    summary = watch.summary(history, restored=True)
    assert summary["stopped"].startswith("converged") and summary["best_epoch"] == 2 and "warning" not in summary
    # a rising schedule's epochs (before `start`) cannot be the best, however low their loss
    ramp = Convergence(TrainSettings(patience=2), start=2)
    for entry in _epochs([0.1, 0.2, 0.9, 0.8]):
        ramp.update(entry)
    assert ramp.best_epoch == 3 and not ramp.done


def test_training_that_stops_while_still_improving_says_so():
    from edgekit.compress.common import Convergence

    watch = Convergence(TrainSettings(epochs=3))
    history = _epochs([0.9, 0.7, 0.5])
    for entry in history:
        watch.update(entry)
    assert "still falling" in watch.summary(history, restored=False)["warning"]
    blind = Convergence(TrainSettings(epochs=2, patience=0))  # no validation: the training loss tells
    history = [{"epoch": 1, "loss": 1.0}, {"epoch": 2, "loss": 0.6}]
    for entry in history:
        blind.update(entry)
    assert "loss was still falling" in blind.summary(history, restored=False)["warning"]


def test_validation_is_held_out_of_the_training_data(npz):
    from edgekit.compress.common import split_validation
    from edgekit.data import read_data
    from edgekit.errors import DataError
    from edgekit.spec import Signature

    data = read_data(npz / "train.npz", Signature(INPUT, ()), None)
    rows, held = split_validation(data, None, TrainSettings(val_fraction=0.2))
    assert len(held) == round(0.2 * len(data)) and len(rows) + len(held) == len(data)
    again, _ = split_validation(data, None, TrainSettings(val_fraction=0.2))
    assert (rows == again).all() and held.sha256 != data.sha256  # seeded; its own content hash
    rest = np.setdiff1d(np.arange(len(data)), rows)  # the held-out samples are exactly those that do not train
    assert np.array_equal(held.arrays["image"], data.arrays["image"][rest])
    everything, none = split_validation(data, None, TrainSettings(patience=0))
    assert len(everything) == len(data) and none is None
    with pytest.raises(DataError, match="at least 8"):
        split_validation(data.head(40), None, TrainSettings())


@pytest.fixture(scope="module")
def distilled(cnn, npz, tmp_path_factory):
    out = tmp_path_factory.mktemp("distill") / "student"
    return distill(  # at the defaults: training runs until the held-out tenth of the data stops improving
        "edgekit_demo.zoo:digits_cnn",
        npz / "train.npz",
        out,
        student="edgekit_demo.zoo:digits_small_cnn",
        inputs=INPUT,
        teacher_weights=cnn[1],
    )


def test_distilled_student_keeps_the_teachers_accuracy(distilled, cnn, digits, npz, tmp_path):
    """At the defaults, a student with a fifth of the teacher's parameters comes within 2 points of it on the
    test digits, which training never saw (it stopped on a tenth of the training data held out)."""
    record = distilled.record
    _, _, x_test, y_test = digits
    import torch

    with torch.inference_mode():
        teacher = float((cnn[0](torch.from_numpy(x_test)).argmax(1).numpy() == y_test).mean())
    assert record["student"]["parameters"] < 0.25 * record["teacher"]["parameters"]
    training = record["training"]
    assert training["stopped"].startswith("converged") and training["epochs_run"] < training["max_epochs"], training
    assert record["val"]["samples"] == round(0.1 * record["data"]["samples"] / 0.9)  # held out of --data
    best = record["history"][training["best_epoch"] - 1]["val"]
    assert {k: best[k] for k in record["metrics_after"]} == record["metrics_after"]  # the best epoch was kept
    # the output folder is a SOURCE: export it, run the file, and the sidecar carries the provenance
    result = export(distilled.out, "onnx-fp32", tmp_path, calib=npz / "test.npz")
    student = artifact_accuracy(result.artifact, x_test, y_test)
    assert student >= teacher - 0.02, (student, teacher, training)
    assert (
        result.sidecar["compression"]["method"] == "distill" and result.sidecar["source"]["kind"] == "exported-program"
    )


def test_teacher_logits_are_cached_by_content(cnn, npz, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEKIT_CACHE", str(tmp_path / "cache"))

    def run():
        return distill(
            "edgekit_demo.zoo:digits_cnn",
            npz / "unlabelled.npz",
            tmp_path / "s",
            inputs=INPUT,
            student="edgekit_demo.zoo:digits_mlp",
            alpha=0.0,
            settings=TrainSettings(epochs=1),
            teacher_weights=cnn[1],
        )

    assert run().record["teacher_logits"] == "computed"  # a fresh cache: the teacher runs
    again = run()
    assert again.record["teacher_logits"] == "cached" and again.record["metrics_after"] is None


@pytest.mark.parametrize("schedule", ["polynomial", "one-shot"])
def test_magnitude_pruning_reaches_its_sparsity(cnn, npz, tmp_path, schedule):
    result = prune(
        "edgekit_demo.zoo:digits_cnn",
        npz / "train.npz",
        tmp_path / "p",
        sparsity=0.7,
        schedule=schedule,
        finetune_epochs=3,
        val=npz / "test.npz",
        inputs=INPUT,
        weights=cnn[1],
    )
    r = result.record
    assert abs(r["sparsity_reached"] - 0.7) <= 0.01 and r["parameters_after"] == r["parameters_before"]
    assert r["metrics_after"]["accuracy"] >= r["metrics_before"]["accuracy"] - 0.02
    assert r["size"]["gzip_bytes"] < 0.7 * r["size"]["raw_bytes"]  # zeros compress; the raw file does not shrink


def test_structured_pruning_makes_the_exported_file_smaller(cnn, npz, tmp_path, digits):
    _, _, x_test, y_test = digits
    dense = export(
        "edgekit_demo.zoo:digits_cnn",
        "onnx-fp32",
        tmp_path / "dense",
        inputs=INPUT,
        weights=cnn[1],
        calib=npz / "test.npz",
    )
    result = prune(
        "edgekit_demo.zoo:digits_cnn",
        npz / "train.npz",
        tmp_path / "p",
        sparsity=0.5,
        method="structured",
        finetune_epochs=3,
        val=npz / "test.npz",
        inputs=INPUT,
        weights=cnn[1],
    )
    r = result.record
    assert r["parameters_after"] < 0.4 * r["parameters_before"] and r["metrics_after"]["accuracy"] > 0.95
    small = export(result.out, "onnx-fp32", tmp_path / "small", calib=npz / "test.npz")
    assert small.parity.passed and small.sidecar["size_bytes"] < 0.4 * dense.sidecar["size_bytes"]
    assert artifact_accuracy(small.artifact, x_test, y_test) == pytest.approx(r["metrics_after"]["accuracy"], abs=0.005)


def _tf_keras_cnn(digits, path):
    from edgekit_demo import zoo

    x_train, y_train, _, _ = digits
    zoo.keras_digits_cnn(x_train, y_train, epochs=3, flavour="tf_keras").save(path)
    return path


@pytest.fixture(scope="module")
def keras_npz(digits, tmp_path_factory):
    x_train, y_train, x_test, y_test = digits
    tmp = tmp_path_factory.mktemp("keras-data")
    nhwc = lambda x: np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    np.savez(tmp / "train.npz", image=nhwc(x_train), labels=y_train)
    np.savez(tmp / "test.npz", image=nhwc(x_test), labels=y_test)
    np.savez(tmp / "calib.npz", image=nhwc(x_train[:200]))
    return tmp


def test_keras_magnitude_pruning_reaches_its_sparsity(digits, keras_npz, tmp_path):
    model = _tf_keras_cnn(digits, tmp_path / "cnn.h5")
    result = prune(
        model, keras_npz / "train.npz", tmp_path / "p", sparsity=0.6, finetune_epochs=3, val=keras_npz / "test.npz"
    )
    r = result.record
    assert abs(r["sparsity_reached"] - 0.6) <= 0.01, r
    exported = export(result.out, "tflite-fp32", tmp_path / "out", calib=keras_npz / "calib.npz")
    assert exported.parity.passed and exported.sidecar["compression"]["sparsity_reached"] == r["sparsity_reached"]


def test_keras_qat_int8_is_at_least_as_accurate_as_post_training_int8(digits, keras_npz, tmp_path):
    _, _, x_test, y_test = digits
    model = _tf_keras_cnn(digits, tmp_path / "cnn.h5")
    ptq = export(model, "tflite-int8", tmp_path / "ptq", calib=keras_npz / "calib.npz")
    result = qat(
        model,
        keras_npz / "train.npz",
        tmp_path / "qat",
        val=keras_npz / "test.npz",
        settings=TrainSettings(epochs=2, lr=1e-4),
    )
    qat_file = export(result.out, "tflite-int8", tmp_path / "qat-out", calib=keras_npz / "calib.npz")
    x = np.ascontiguousarray(x_test.transpose(0, 2, 3, 1))
    ptq_acc = artifact_accuracy(ptq.artifact, x, y_test)
    qat_acc = artifact_accuracy(qat_file.artifact, x, y_test)
    assert qat_acc >= ptq_acc, (qat_acc, ptq_acc)
    assert qat_file.sidecar["compression"]["method"] == "qat"


def test_a_keras3_model_is_refused_for_tfmot(digits, keras_npz, tmp_path):
    from edgekit_demo import zoo

    x_train, y_train, _, _ = digits
    path = tmp_path / "k3.keras"
    zoo.keras_digits_cnn(x_train, y_train, epochs=1).save(path)
    with pytest.raises(UsageError, match="tf_keras models only"):
        qat(path, keras_npz / "train.npz", tmp_path / "q")
    assert not (tmp_path / "q").exists()


@pytest.mark.parametrize(
    "args, phrase",
    [
        (["prune", "--sparsity", "1.5"], "outside (0, 1)"),
        (["distill-labels"], "pass --alpha 0"),
        (["distill-classes"], "same classes"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(capsys, cnn, npz, tmp_path, args, phrase):
    common = ["--input", "image:float32:batchx1x8x8", "-o", tmp_path / "out"]
    if args[0] == "prune":
        argv = [
            "compress",
            "prune",
            "--model",
            "edgekit_demo.zoo:digits_cnn",
            "--weights",
            cnn[1],
            *args[1:],
            "--data",
            npz / "train.npz",
            *common,
        ]
    else:
        # torch.nn:Flatten gives 64 outputs per image: not the teacher's 10 classes
        student = "edgekit_demo.zoo:digits_mlp" if args[0] == "distill-labels" else "torch.nn:Flatten"
        data = npz / ("unlabelled.npz" if args[0] == "distill-labels" else "train.npz")
        argv = [
            "compress",
            "distill",
            "--teacher",
            "edgekit_demo.zoo:digits_cnn",
            "--teacher-weights",
            cnn[1],
            "--student",
            student,
            "--data",
            data,
            *common,
        ]
    code, text = run_cli(capsys, *argv)
    assert code == 2 and phrase in text and "Traceback" not in text, text
    assert not (tmp_path / "out").exists()


def _tiny_bert(folder, vocab_size=64):
    """A 4-layer BERT classifier (4 heads of 8, FFN 64) saved as a Hugging Face folder, random weights."""
    import torch
    import transformers

    config = transformers.BertConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=64,
        num_labels=3,
        architectures=["BertForSequenceClassification"],
    )
    torch.manual_seed(0)
    transformers.BertForSequenceClassification(config).save_pretrained(folder)
    return folder


def test_structured_pruning_removes_attention_heads_and_ffn_neurons(tmp_path):
    rng = np.random.default_rng(0)
    ids = rng.integers(1, 64, (128, 16)).astype(np.int64)
    mask = np.ones_like(ids)
    mask[:, 12:] = 0  # a real attention mask: padded positions
    np.savez(
        tmp_path / "data.npz",
        input_ids=ids,
        attention_mask=mask,
        token_type_ids=np.zeros_like(ids),
        labels=ids[:, 0] % 3,
    )
    result = prune(
        _tiny_bert(tmp_path / "bert"),
        tmp_path / "data.npz",
        tmp_path / "p",
        sparsity=0.5,
        method="structured",
        finetune_epochs=1,
    )
    pruned = load_file_weights(result.out)
    assert pruned["model.bert.encoder.layer.0.attention.self.query.weight"].shape == (16, 32)  # 2 heads of 8
    assert pruned["model.bert.encoder.layer.3.intermediate.dense.weight"].shape == (32, 32)  # 32 FFN neurons
    assert pruned["model.bert.embeddings.word_embeddings.weight"].shape == (64, 32)  # hidden size kept
    exported = export(result.out, "onnx-fp32", tmp_path / "out", calib=tmp_path / "data.npz")
    assert exported.parity.passed and result.record["parameters_after"] < result.record["parameters_before"]


def load_file_weights(folder):
    from safetensors.numpy import load_file

    return load_file(folder / "weights.safetensors")


def test_student_layers_keep_evenly_spaced_teacher_layers(tmp_path):
    import torch
    import transformers

    from edgekit.compress.distill import student_from_layers
    from edgekit.sources import load

    config = transformers.BertConfig(
        vocab_size=64,
        hidden_size=16,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=32,
        num_labels=3,
        architectures=["BertForSequenceClassification"],
    )
    torch.manual_seed(0)
    transformers.BertForSequenceClassification(config).save_pretrained(tmp_path / "bert")
    teacher = load(tmp_path / "bert")
    student, kept = student_from_layers(teacher, 2)
    assert kept == [0, 3] and student.obj.model.config.num_hidden_layers == 2
    t_layers, s_layers = teacher.obj.model.bert.encoder.layer, student.obj.model.bert.encoder.layer
    assert torch.equal(s_layers[1].output.dense.weight, t_layers[3].output.dense.weight)
    assert len(t_layers) == 4  # the teacher is untouched
    with pytest.raises(UsageError, match="give 1 to 3"):
        student_from_layers(teacher, 4)


def test_a_narrower_student_keeps_the_teachers_strongest_feed_forward_units(tmp_path):
    """--student-width 0.25: every kept layer's FFN keeps the 16 of 64 units with the largest ‖w_in‖·‖w_out‖
    (the teacher's own weights, not new ones); the distilled folder reloads with the narrower config and exports."""
    import torch

    from edgekit.compress.distill import student_from_layers
    from edgekit.sources import load

    teacher = load(_tiny_bert(tmp_path / "bert"))
    student, kept = student_from_layers(teacher, 2, 0.25)
    assert kept == [0, 3] and student.obj.model.config.intermediate_size == 16
    t_layer, s_layer = teacher.obj.model.bert.encoder.layer[3], student.obj.model.bert.encoder.layer[1]
    w_in, w_out = t_layer.intermediate.dense.weight, t_layer.output.dense.weight
    strongest = torch.sort(torch.topk(w_in.norm(dim=1) * w_out.norm(dim=0), 16).indices).values
    assert torch.equal(s_layer.intermediate.dense.weight, w_in[strongest])
    assert torch.equal(s_layer.output.dense.weight, w_out[:, strongest])
    assert torch.equal(s_layer.output.dense.bias, t_layer.output.dense.bias)
    with pytest.raises(UsageError, match="in \\(0, 1\\]"):
        student_from_layers(teacher, None, 1.5)

    rng = np.random.default_rng(0)
    ids = rng.integers(1, 64, (64, 16)).astype(np.int64)
    zeros, ones = np.zeros_like(ids), np.ones_like(ids)
    np.savez(tmp_path / "data.npz", input_ids=ids, attention_mask=ones, token_type_ids=zeros, labels=ids[:, 0] % 3)
    settings = TrainSettings(epochs=1, patience=0)
    result = distill(tmp_path / "bert", tmp_path / "data.npz", tmp_path / "w", student_width=0.5, settings=settings)
    assert result.record["student"]["width"] == 0.5 and result.record["student"]["layers_kept"] == [0, 1, 2, 3]
    from safetensors.numpy import load_file

    weights = load_file(result.out / "model.safetensors")
    assert weights["bert.encoder.layer.2.intermediate.dense.weight"].shape == (32, 32)
    assert result.record["student"]["parameters"] < result.record["teacher"]["parameters"]
    assert export(result.out, "onnx-fp32", tmp_path / "out", calib=tmp_path / "data.npz").parity.passed


@pytest.mark.slow  # about 17 s (two full runs and an interrupted one); Keras pruning's resume is checked fast
def test_an_interrupted_run_resumes_to_the_same_result(cnn, npz, tmp_path):
    """Ctrl-C during fine-tuning leaves the last complete checkpoint and no OUT; --resume finishes the job
    with the weights an uninterrupted run gets."""
    argv = [
        sys.executable,
        "-m",
        "edgekit",
        "compress",
        "prune",
        "--model",
        "edgekit_demo.zoo:digits_mlp",
        "--sparsity",
        "0.5",
        "--finetune-epochs",
        "12",
        "--data",
        str(npz / "train.npz"),
        "--input",
        "image:float32:batchx1x8x8",
        "-q",
    ]
    whole = subprocess.run([*argv, "-o", str(tmp_path / "whole")], capture_output=True, text=True, timeout=600)
    assert whole.returncode == 0, whole.stderr
    out = tmp_path / "cut"
    checkpoints = tmp_path / ".cut.checkpoints"
    proc = subprocess.Popen([*argv, "-o", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    reached = lambda: [p for p in checkpoints.glob("epoch-*.pt") if p.name >= "epoch-0002.pt"]
    while not reached() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Interrupted" in err, err
    assert not out.exists() and list(checkpoints.glob("epoch-*.pt"))
    resumed = subprocess.run([*argv, "-o", str(out), "--resume"], capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    from safetensors.numpy import load_file

    a, b = load_file(tmp_path / "whole" / "weights.safetensors"), load_file(out / "weights.safetensors")
    assert a.keys() == b.keys() and all(np.allclose(a[k], b[k], atol=1e-6) for k in a)
    assert not checkpoints.exists()
    record, uncut = (json.loads((d / "compress.json").read_text()) for d in (out, tmp_path / "whole"))
    history, training = record["history"], record["training"]
    assert training == uncut["training"]  # the resumed run replayed the validation history: the same stop
    assert [h["epoch"] for h in history] == list(range(1, training["epochs_run"] + 1))
    assert not math.isnan(history[-1]["loss"])


@pytest.mark.slow  # Keras distillation, half a minute; torch distillation stays in the fast suite
def test_a_keras_student_learns_from_a_keras_teacher(digits, keras_npz, tmp_path):
    import keras

    teacher = _tf_keras_cnn(digits, tmp_path / "teacher.h5")
    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 1), name="image")
    hidden = keras.layers.Dense(48, activation="relu")(keras.layers.Flatten()(inp))
    keras.Model(inp, keras.layers.Dense(10)(hidden)).save(tmp_path / "student.keras")
    result = distill(
        teacher,
        keras_npz / "train.npz",
        tmp_path / "s",
        student=tmp_path / "student.keras",
        val=keras_npz / "test.npz",
        temperature=4.0,
        settings=TrainSettings(epochs=15, lr=3e-3),
    )
    r = result.record
    assert r["metrics_after"]["accuracy"] >= r["teacher"]["metrics"]["accuracy"] - 0.04, r
    assert r["metrics_after"]["accuracy"] > r["metrics_before"]["accuracy"] + 0.5
    exported = export(result.out, "onnx-fp32", tmp_path / "out", calib=keras_npz / "calib.npz")
    assert exported.parity.passed and exported.sidecar["compression"]["method"] == "distill"


@pytest.mark.slow  # 45 s: QAT fine-tuning, then two exports
def test_torch_qat_int8_is_at_least_as_accurate_as_post_training_int8(transformer, npz, calib_npz, digits, tmp_path):
    """PT2E QAT of the tiny transformer: its executorch-int8 file keeps the ranges learned in training
    (no re-calibration) and is at least as accurate as post-training int8 of the same weights."""
    _, _, x_test, y_test = digits
    source = "edgekit_demo.zoo:tiny_transformer"
    ptq = export(source, "executorch-int8", tmp_path / "ptq", calib=calib_npz, inputs=INPUT, weights=transformer[1])
    result = qat(
        source,
        npz / "train.npz",
        tmp_path / "qat",
        inputs=INPUT,
        weights=transformer[1],
        settings=TrainSettings(epochs=1, lr=1e-4),
    )
    qat_file = export(result.out, "executorch-int8", tmp_path / "qat-out", calib=calib_npz)
    assert qat_file.parity.passed
    assert qat_file.sidecar["route"][0]["quantization"]["recalibrated"] is False
    assert artifact_accuracy(qat_file.artifact, x_test, y_test) >= artifact_accuracy(ptq.artifact, x_test, y_test)
    with pytest.raises(UsageError, match="already int8"):
        export(result.out, "onnx-fp32", tmp_path / "no", calib=calib_npz)


@pytest.mark.slow  # Keras resume; the torch resume test stays in the fast suite
def test_keras_pruning_resumes_to_the_same_result(digits, keras_npz, tmp_path, monkeypatch):
    """Interrupted right after its second checkpoint, a Keras pruning run resumes to the weights of an
    uninterrupted one (same batch order, pruning step and optimizer state restored)."""
    from edgekit.compress.keras_compress import KerasCheckpoints

    model = _tf_keras_cnn(digits, tmp_path / "cnn.h5")
    run = lambda out, **kw: prune(model, keras_npz / "train.npz", out, sparsity=0.5, finetune_epochs=4, **kw)
    whole = run(tmp_path / "whole")
    save = KerasCheckpoints.save_keras

    def save_then_stop(self, tf, m, optimizer, epoch, history, keep):
        save(self, tf, m, optimizer, epoch, history, keep)
        if epoch == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(KerasCheckpoints, "save_keras", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "cut")
    assert not (tmp_path / "cut").exists() and (tmp_path / ".cut.checkpoints" / "epoch-0001").is_dir()
    monkeypatch.setattr(KerasCheckpoints, "save_keras", save)
    resumed = run(tmp_path / "cut", resume=True)
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3, 4]
    assert resumed.record["sparsity_reached"] == whole.record["sparsity_reached"]
    assert resumed.record["metrics_after"] == whole.record["metrics_after"]
    assert [h["loss"] for h in resumed.history] == pytest.approx([h["loss"] for h in whole.history], rel=1e-4)


def test_vocabulary_pruning_keeps_what_the_corpus_uses(tmp_path):
    """A tiny BERT with a WordPiece tokenizer of 40 tokens; the corpus uses a few of them: the pruned model
    has fewer embeddings, tokenizes the corpus to the same tokens, and gives the same logits on it."""
    import transformers

    words = ["good", "bad", "day", "night", "fly", "late", "on", "time", "great", "awful", "##s", "##ly"]
    extra = [f"word{i}" for i in range(23)]
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words, *extra]
    tokenizer = transformers.BertTokenizerFast(vocab={t: i for i, t in enumerate(tokens)})
    folder = _tiny_bert(tmp_path / "bert", vocab_size=len(tokenizer))
    tokenizer.save_pretrained(folder)
    texts = ["good day", "bad night", "late flys", "great time on time", "awful night"]
    (tmp_path / "corpus.csv").write_text("text,label\n" + "\n".join(f"{t},{i % 3}" for i, t in enumerate(texts)))
    result = prune_vocabulary(folder, tmp_path / "corpus.csv", tmp_path / "small", val=tmp_path / "corpus.csv")
    r = result.record
    assert r["tokens_before"] == 40 and r["tokens_after"] == 5 + 11  # specials + the 11 tokens the corpus uses
    assert r["parameters_after"] == r["parameters_before"] - 24 * 32 and r["metrics_after"] == r["metrics_before"]
    exported = export(result.out, "onnx-fp32", tmp_path / "out", calib=tmp_path / "corpus.csv")
    reference = export(folder, "onnx-fp32", tmp_path / "ref", calib=tmp_path / "corpus.csv")
    from edgekit.evaluation import evaluate

    logits = evaluate(exported.artifact, tmp_path / "corpus.csv").metrics
    assert exported.parity.passed and logits == evaluate(reference.artifact, tmp_path / "corpus.csv").metrics
    with pytest.raises(UsageError, match="WordPiece"):
        prune_vocabulary("edgekit_demo.zoo:digits_cnn", tmp_path / "corpus.csv", tmp_path / "x", inputs=INPUT)


def test_structured_pruning_names_the_line_a_pruned_model_breaks_at(npz, tmp_path, capsys):
    code, text = run_cli(
        capsys,
        "compress",
        "prune",
        "--model",
        "tests_models:hardwired_cnn",
        "--sparsity",
        "0.5",
        "--method",
        "structured",
        "--data",
        npz / "train.npz",
        "--input",
        "image:float32:batchx1x8x8",
        "-o",
        tmp_path / "p",
    )
    assert code == 2 and "tests_models.py" in text and "features.view(-1, 16 * 8 * 8)" in text, text
    assert not (tmp_path / "p").exists()


def test_choose_rank_by_ratio_and_by_energy():
    from edgekit.compress.lowrank import choose_rank

    singular = np.array([4.0, 2.0, 1.0, 1.0])  # squares 16, 4, 1, 1 of 22
    assert choose_rank(singular, rank_ratio=0.25) == 1 and choose_rank(singular, rank_ratio=0.3) == 2
    assert choose_rank(singular, energy=16 / 22) == 1 and choose_rank(singular, energy=0.8) == 2
    assert choose_rank(singular, energy=1.0) == 4


def test_a_low_rank_layer_is_factorized_exactly_and_the_classifier_is_left_whole():
    import torch

    from edgekit.compress.lowrank import factorize

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 48), torch.nn.ReLU(), torch.nn.Linear(48, 10))
    with torch.no_grad():  # a rank-4 weight: 99.9 % of its energy is in 4 singular values, all of it in fact
        model[0].weight.copy_(torch.randn(48, 4) @ torch.randn(4, 64) / 8)
    x = torch.randn(16, 64)
    want = model(x)
    records = factorize(model, None, 0.999, classes=10)
    assert records[0] == {"layer": "0", "in": 64, "out": 48, "rank": 4, "energy_kept": 1.0}
    assert records[1] == {"layer": "2", "in": 48, "out": 10, "kept": "the classifier"}
    assert [m.weight.shape for m in model[0]] == [(4, 64), (48, 4)]
    torch.testing.assert_close(model(x), want, atol=1e-5, rtol=1e-5)


def test_lowrank_shrinks_the_cnn_keeps_its_accuracy_and_exports(capsys, cnn, npz, tmp_path):
    code, out = run_cli(
        capsys, "compress", "lowrank", "--model", "edgekit_demo.zoo:digits_cnn", "--weights", cnn[1],
        "--rank-ratio", "0.25", "--finetune-epochs", "2", "--data", npz / "train.npz", "--val", npz / "test.npz",
        "--input", "image:float32:batchx1x8x8", "-o", tmp_path / "lr",
    )  # fmt: skip
    assert code == 0, out
    assert "1 Linear layer(s) factorized (8 64x512 -> rank 16)" in out
    record = json.loads((tmp_path / "lr" / "compress.json").read_text())
    assert record["parameters_before"] - record["parameters_after"] == 64 * 512 - 16 * (64 + 512)
    assert record["metrics_after"]["accuracy"] >= record["metrics_before"]["accuracy"] - 0.02, record
    exported = export(tmp_path / "lr", "onnx-fp32", tmp_path / "out", calib=npz / "test.npz")
    assert exported.parity.passed and exported.sidecar["compression"]["method"] == "lowrank"


@pytest.mark.parametrize(
    "flags, phrase",
    [([], "not both or neither"), (["--rank-ratio", "0.5", "--energy", "0.9"], "not both or neither"),
     (["--energy", "1.5"], "outside (0, 1]"), (["--rank-ratio", "1"], "No Linear layer")],
)  # fmt: skip
def test_lowrank_bad_settings_exit_2_and_write_nothing(capsys, cnn, npz, tmp_path, flags, phrase):
    code, out = run_cli(
        capsys, "compress", "lowrank", "--model", "edgekit_demo.zoo:digits_cnn", "--weights", cnn[1], *flags,
        "--data", npz / "train.npz", "--input", "image:float32:batchx1x8x8", "-o", tmp_path / "lr",
    )  # fmt: skip
    assert code == 2 and phrase in out, out
    assert not (tmp_path / "lr").exists()


def test_causal_lm_loss_scores_each_position_against_the_next_token_and_skips_padding():
    """α·CE(next token) + (1−α)·T²·KL over the positions that have a next token: a padded position changes
    nothing, whatever its logits."""
    import torch

    from edgekit.compress.distill_lm import lm_loss

    rng = np.random.default_rng(0)
    s, t = rng.normal(size=(1, 4, 5)), rng.normal(size=(1, 4, 5))
    ids, mask = np.array([[1, 3, 2, 0]]), np.array([[1, 1, 1, 0]])  # the last position is padding
    alpha, temp = 0.25, 2.0

    def log_softmax(z):
        z = z - z.max(-1, keepdims=True)
        return z - np.log(np.exp(z).sum(-1, keepdims=True))

    scored = [0, 1]  # positions 0 and 1 predict tokens 3 and 2; position 2 predicts padding
    lp_t, lp_s = log_softmax(t[0, scored] / temp), log_softmax(s[0, scored] / temp)
    kl = np.mean(np.sum(np.exp(lp_t) * (lp_t - lp_s), axis=-1))
    ce = np.mean(-log_softmax(s[0, scored])[[0, 1], [3, 2]])
    expected = alpha * ce + (1 - alpha) * temp**2 * kl
    args = [torch.tensor(a) for a in (s, t, ids, mask)]
    assert float(lm_loss(*args, alpha, temp)) == pytest.approx(expected, rel=1e-9)
    s[0, 2:] += 100.0  # what padding predicts does not count
    assert float(lm_loss(torch.tensor(s), *args[1:], alpha, temp)) == pytest.approx(expected, rel=1e-9)


@pytest.fixture(scope="module")
def lm_teacher(tmp_path_factory) -> Path:
    from edgekit_demo.zoo_families import build_family

    return build_family("llama", tmp_path_factory.mktemp("lm") / "llama", tweets=600, epochs=1)


def test_a_causal_lm_student_cannot_be_narrowed_yet(tmp_path, capsys):
    from edgekit_demo.zoo_families import build_family

    teacher = build_family("llama", tmp_path / "llama")
    code, text = run_cli(
        capsys, "compress", "distill", "--teacher", teacher, "--student-width", "0.5",
        "--data", "builtin:tweets:train", "-o", tmp_path / "student",
    )  # fmt: skip
    assert code == 2 and "a causal LM's gated feed-forward" in text and not (tmp_path / "student").exists()


@pytest.mark.slow  # a minute or more: the teacher runs beside the student at every step
def test_a_causal_lm_teacher_distills_into_a_layer_dropped_student_that_generates(lm_teacher, tmp_path, capsys):
    """A 1-layer student of the 2-layer Llama learns the teacher's next-token distributions: its perplexity on
    held-out tweets falls, compress.json records both perplexities, and the student exports with its cache."""
    from edgekit.exporter import export
    from edgekit_demo.datasets import write_tweets_csv

    train, val = write_tweets_csv(tmp_path / "t.csv", "train", 160), write_tweets_csv(tmp_path / "v.csv", "test", 40)
    args = ["--teacher", lm_teacher, "--student-layers", "1", "--data", train, "--val", val, "--epochs", "3"]
    code, text = run_cli(capsys, "compress", "distill", *args, "--batch", "8", "-o", tmp_path / "student")
    assert code == 0, text
    record = json.loads((tmp_path / "student" / "compress.json").read_text())
    assert record["student"]["layers_kept"] == [0] and record["teacher"]["metrics"]["perplexity"] > 1
    assert record["metrics_after"]["perplexity"] < 0.8 * record["metrics_before"]["perplexity"]
    assert record["history"][-1]["val"]["loss"] < record["history"][0]["val"]["loss"]
    result = export(tmp_path / "student", "openvino-llm-fp32", tmp_path / "out", options={"prompts": 4})
    assert result.sidecar["route"][0]["generation"]["identical_prompts"] == 4
