"""Evaluation through the exported file's runtime: metrics, perplexity, gates, bad input."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
from helpers import run_cli
from sklearn import metrics as skm

from edgekit.errors import DataError, UsageError
from edgekit.evaluation import evaluate
from edgekit.evaluation.metrics import classification_metrics, token_nll
from edgekit.evaluation.perplexity import evaluate_perplexity, stream_windows
from edgekit.exporter import export
from edgekit.runners.base import Runner
from edgekit.spec import TensorSpec, parse_input_spec
from edgekit_demo import zoo

IMAGE = (parse_input_spec(zoo.DIGITS_INPUT),)


def test_classification_metrics_match_sklearn():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 4, 300)
    logits = rng.standard_normal((300, 4)) + np.eye(4)[labels] * 1.2
    pred = logits.argmax(-1)
    m = classification_metrics(logits, labels, ["a", "b", "c", "d"])
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(labels, pred))
    assert m["f1_macro"] == pytest.approx(skm.f1_score(labels, pred, average="macro"))
    assert m["f1_micro"] == pytest.approx(skm.f1_score(labels, pred, average="micro"))
    assert m["per_class"]["c"]["recall"] == pytest.approx(skm.recall_score(labels, pred, average=None)[2])
    assert m["confusion_matrix"] == skm.confusion_matrix(labels, pred).tolist()
    assert "f1_binary" not in m


def test_binary_f1_is_labeled():
    labels = np.array([0, 1, 1, 0, 1, 1])
    logits = np.array([[2, 0], [0, 1], [1, 0], [1, 0], [0, 3], [0, 1]], dtype=float)
    m = classification_metrics(logits, labels)
    assert m["f1_binary"] == pytest.approx(skm.f1_score(labels, logits.argmax(-1)))


def test_labels_that_do_not_match_outputs_say_how_many_classes():
    with pytest.raises(DataError, match="2 scores per sample"):
        classification_metrics(np.zeros((3, 2)), np.array([0, 1, 5]))


class _Bigram(Runner):
    """A tiny deterministic 'language model': logits depend only on the current token (a bigram table)."""

    name = "bigram"

    def __init__(self, table: np.ndarray, context: int) -> None:
        super().__init__()
        self.table, self.context = table, context

    def activate_impl(self):
        pass

    def input_specs_impl(self):
        return (TensorSpec("input_ids", "int64", (1, self.context)),)

    def output_names_impl(self):
        return ["logits"]

    def infer_impl(self, feed):
        return {"logits": self.table[feed["input_ids"]]}


def test_perplexity_equals_hand_computed_value():
    rng = np.random.default_rng(0)
    table = rng.standard_normal((5, 5))
    ids = rng.integers(0, 5, 40)
    log_probs = table - np.log(np.exp(table).sum(-1, keepdims=True))
    expected = math.exp(-np.mean([log_probs[a, b] for a, b in itertools.pairwise(ids)]))
    with _Bigram(table, context=8) as runner:
        result = evaluate_perplexity(runner, ids, context=8, stride=4)
    assert result["tokens"] == len(ids) - 1  # every token but the first is scored exactly once
    assert result["perplexity"] == pytest.approx(expected, rel=1e-9)
    assert (result["context_length"], result["stride"]) == (8, 4)


def test_windows_score_each_token_once():
    ids = np.arange(23)
    scored = []
    for window, first in stream_windows(ids, context=8, stride=3):
        scored.extend(window[first:].tolist())
    assert scored == list(range(1, 23))


def test_token_nll_is_stable_for_large_logits():
    logits = np.array([[1000.0, 0.0]])
    assert token_nll(logits, np.array([0]))[0] == pytest.approx(0.0)


@pytest.fixture(scope="module")
def cnn_files(tmp_path_factory, cnn, calib_npz):
    out = tmp_path_factory.mktemp("eval")
    return {
        t: export("edgekit_demo.zoo:digits_cnn", t, out, calib=calib_npz, weights=cnn[1], inputs=IMAGE).artifact
        for t in ("onnx-fp32", "onnx-int8")
    }


def test_evaluate_int8_against_source_with_a_gate_that_passes(cnn_files, cnn, test_npz):
    report = evaluate(
        cnn_files["onnx-int8"],
        test_npz,
        reference="edgekit_demo.zoo:digits_cnn",
        reference_weights=cnn[1],
        max_drop=1.5,
    )
    assert report.passed, report.failures
    assert report.notes == []  # its own source
    assert report.metrics["accuracy"] > 0.85
    assert report.drop["accuracy"] == pytest.approx((report.reference["accuracy"] - report.metrics["accuracy"]) * 100)
    assert report.metrics["samples"] == 449
    from edgekit.evaluation.schema import SCHEMA_FILE, EvaluateReport, json_schema

    assert json.loads(SCHEMA_FILE.read_text()) == json_schema(), "stale: run python -m edgekit.evaluation.schema"
    document = EvaluateReport.model_validate(json.loads(json.dumps(report.to_json())))
    assert document.schema_version == "1" and document.reference.accuracy == report.reference["accuracy"]


def test_a_reference_that_is_not_the_files_source_is_said(cnn_files, cnn, mlp, test_npz, tmp_path, capsys):
    """Another model as the reference (by the source hash the sidecar records), and a file with no sidecar (a
    file made elsewhere): the comparison still runs, and the report says what it compares."""
    import shutil

    other = evaluate(cnn_files["onnx-fp32"], test_npz, reference="edgekit_demo.zoo:digits_mlp",
                     reference_weights=mlp[1], reference_inputs=IMAGE)  # fmt: skip
    (note,) = other.notes
    assert "not from the reference edgekit_demo.zoo:digits_mlp" in note and "two different models" in note
    bare = shutil.copy(cnn_files["onnx-fp32"], tmp_path / "from-elsewhere.onnx")
    args = ["evaluate", bare, "--data", test_npz, "--reference", "edgekit_demo.zoo:digits_cnn"]
    code, text = run_cli(capsys, *args, "--weights", cnn[1], "--input", zoo.DIGITS_INPUT)
    assert code == 0 and "note: from-elsewhere.onnx has no edgekit sidecar" in text


def test_a_reference_whose_inputs_fix_batch_1_is_run_one_sample_at_a_time(cnn_files, cnn, test_npz):
    """--input fixing the reference's batch (as for a fixed-shape export) used to fail after the artifact's whole
    evaluation: the reference was fed the artifact's batches of 32."""
    fixed = tuple(parse_input_spec(f"{s.name}:{s.dtype}:1x" + "x".join(map(str, s.shape[1:]))) for s in IMAGE)
    report = evaluate(cnn_files["onnx-fp32"], test_npz, reference="edgekit_demo.zoo:digits_cnn",
                      reference_weights=cnn[1], reference_inputs=fixed, max_drop=0.01)  # fmt: skip
    assert report.passed and report.reference["samples"] == 449
    assert report.reference["accuracy"] == pytest.approx(report.metrics["accuracy"])


def test_gate_that_fails_exits_1_with_the_numbers(capsys, cnn_files, cnn, tmp_path):
    """fp32 file vs a reference of *other* weights: the drop is real and large, so the gate must fail."""
    from edgekit_demo import zoo as z

    x_train, y_train, _, _ = z.digits_split()
    weak = z.save_weights(z.train(z.digits_cnn(), x_train[:40], y_train[:40], epochs=1), tmp_path / "weak.pt")
    # the artifact is the weak model; the reference is the well-trained one
    weak_file = export("edgekit_demo.zoo:digits_cnn", "onnx-fp32", tmp_path / "w", weights=weak, inputs=IMAGE).artifact
    out_json = tmp_path / "report.json"
    code, out = run_cli(
        capsys,
        "evaluate",
        weak_file,
        "--data",
        "builtin:digits:test",
        "--reference",
        "edgekit_demo.zoo:digits_cnn",
        "--weights",
        cnn[1],
        "--max-drop",
        "1",
        "--json",
        out_json,
    )
    assert code == 1, out
    assert "gate failed" in out and "exceeds --max-drop 1.0" in out
    report = json.loads(out_json.read_text())
    assert report["passed"] is False
    assert report["metrics"]["accuracy"] < report["reference"]["accuracy"] - 0.01
    assert {"accuracy", "f1_macro"} <= set(report["metrics"]) and "accuracy" in report["reference"]


def test_evaluate_cli_json_contract(capsys, cnn_files, cnn, tmp_path):
    out_json = tmp_path / "r.json"
    code, out = run_cli(
        capsys,
        "evaluate",
        cnn_files["onnx-fp32"],
        "--data",
        "builtin:digits:test",
        "--metric",
        "accuracy,f1",
        "--reference",
        "edgekit_demo.zoo:digits_cnn",
        "--weights",
        cnn[1],
        "--max-drop",
        "0.5",
        "--json",
        out_json,
    )
    assert code == 0, out
    report = json.loads(out_json.read_text())
    assert report["passed"] is True and report["drop"]["accuracy"] == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize(
    "args,phrase",
    [
        (["--metric", "bleu"], "Unknown metric"),
        (["--metric", "accuracy,perplexity"], "one kind per run"),
        (["--max-drop", "1"], "needs --reference"),
    ],
)
def test_bad_evaluate_usage_exits_2(capsys, cnn_files, args, phrase):
    code, out = run_cli(capsys, "evaluate", cnn_files["onnx-fp32"], "--data", "builtin:digits:test", *args)
    assert code == 2 and phrase in out and "Traceback" not in out


def test_empty_and_unlabeled_data_are_refused(cnn_files, tmp_path):
    empty = tmp_path / "empty.npz"
    np.savez(empty, image=np.zeros((0, 1, 8, 8), np.float32), labels=np.zeros((0,), np.int64))
    with pytest.raises(DataError, match="no samples"):
        evaluate(cnn_files["onnx-fp32"], empty)
    unlabeled = tmp_path / "unlabeled.npz"
    np.savez(unlabeled, image=np.zeros((4, 1, 8, 8), np.float32))
    with pytest.raises(DataError, match="no labels"):
        evaluate(cnn_files["onnx-fp32"], unlabeled)


def test_text_data_without_tokenizer_is_refused(cnn_files, tmp_path):
    csv = tmp_path / "t.csv"
    csv.write_text("text,label\nhi,0\n")
    with pytest.raises(DataError, match="no tokenizer"):
        evaluate(cnn_files["onnx-fp32"], csv)


def test_perplexity_on_a_classifier_is_refused(cnn_files):
    with pytest.raises(UsageError):
        evaluate(cnn_files["onnx-fp32"], "builtin:digits:test", metrics=("perplexity",))


def test_builtin_tweets_splits_are_fixed_and_disjoint():
    from edgekit_demo.datasets import tweets

    test_a, labels_a = tweets("test")
    test_b, _ = tweets("test")
    train, _ = tweets("train")
    validation, _ = tweets("validation")
    assert test_a == test_b and len(test_a) == len(validation) == 1000 and len(train) > 30000
    assert not set(test_a) & set(train) and not set(test_a) & set(validation)
    assert set(labels_a.tolist()) == {0, 1, 2}


def test_datasets_command_lists_builtins(capsys):
    code, out = run_cli(capsys, "datasets")
    assert code == 0 and "builtin:tweets:SPLIT" in out and "builtin:digits:SPLIT" in out
