"""The sidecar as a versioned contract, and parity that matches outputs by name (real ONNX Runtime files)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import run_cli
from onnx_graphs import inputs_npz, linear_classifier

from edgekit.backends.onnxruntime.runner import OnnxRuntimeRunner
from edgekit.catalog.schema import OutputTolerance, Tolerance
from edgekit.data import Dataset
from edgekit.dispatch import open_runner
from edgekit.errors import ModelLoadError
from edgekit.exporter import export
from edgekit.parity import check_parity
from edgekit.sidecar import SCHEMA_FILE, SCHEMA_VERSION, Sidecar, json_schema, read_sidecar, sidecar_path

LOOSE = Tolerance(cosine_min=0.9999, top1_min=0.99)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sidecar")
    return export(linear_classifier(tmp / "linear.onnx"), "onnx-int8", tmp / "out", calib=inputs_npz(tmp / "x.npz"))


def test_sidecar_round_trip(exported):
    read = read_sidecar(exported.artifact)
    assert isinstance(read, Sidecar) and read.to_json() == exported.sidecar
    assert read.schema_version == SCHEMA_VERSION == "1.6" and read.quantization.applied == "static"
    assert read.tensors.input_specs()[0].name == "x" and read.tensors.output_names() == ["scores", "features"]
    assert read.parity.matched_by == "name" and read.sha256 and read.size_bytes == exported.artifact.stat().st_size


def test_the_shipped_json_schema_is_current():
    """Regenerate with `python -m edgekit.sidecar` when the model changes."""
    assert json.loads(SCHEMA_FILE.read_text()) == json_schema()


def test_an_unknown_major_version_is_refused(exported, tmp_path, capsys):
    artifact = tmp_path / exported.artifact.name
    artifact.write_bytes(exported.artifact.read_bytes())
    sidecar_path(artifact).write_text(json.dumps({**exported.sidecar, "schema_version": "2.0"}))
    with pytest.raises(ModelLoadError, match="schema version 2.0; this edgekit reads version 1.x"):
        open_runner(artifact)
    code, text = run_cli(capsys, "evaluate", artifact, "--data", tmp_path / "none.npz")
    assert code == 2 and "schema version 2.0" in text


def test_a_sidecar_that_breaks_the_schema_names_the_field(exported, tmp_path):
    artifact = tmp_path / exported.artifact.name
    artifact.write_bytes(exported.artifact.read_bytes())
    sidecar_path(artifact).write_text(json.dumps({**exported.sidecar, "size_bytes": "big"}))
    with pytest.raises(ModelLoadError, match="size_bytes"):
        read_sidecar(artifact)


def test_a_program_without_its_io_description_is_refused(tmp_path):
    pte = tmp_path / "model.pte"
    pte.write_bytes(b"\0" * 64)
    with pytest.raises(ModelLoadError, match="no sidecar with its input tensors"):
        open_runner(pte)


def _data(n: int = 48) -> Dataset:
    return Dataset({"x": np.random.default_rng(3).standard_normal((n, 8)).astype(np.float32)}, None, "test", "")


def _parity(reference, candidate, tol=LOOSE, roles=None):
    with OnnxRuntimeRunner(reference) as ref, OnnxRuntimeRunner(candidate) as got:
        return check_parity(ref, got, _data(), 16, tol, roles=roles)


def test_parity_matches_outputs_by_name_not_position(tmp_path):
    a = linear_classifier(tmp_path / "a.onnx", scores_first=True)
    b = linear_classifier(tmp_path / "b.onnx", scores_first=False)
    result = _parity(a, b)
    assert result.passed and result.matched_by == "name" and not result.warnings
    assert [o.name for o in result.outputs] == ["features", "scores"]  # the candidate's order, each with its twin
    assert [o.top1 is not None for o in result.outputs] == [True, True]  # both (batch, n>1): judged from shape


def test_parity_by_position_warns_and_roles_decide_top1(tmp_path):
    a = linear_classifier(tmp_path / "a.onnx")
    b = linear_classifier(tmp_path / "b.onnx", scores="logits", features="embedding")
    result = _parity(a, b, roles={"logits": "scores", "embedding": "features"})
    assert result.passed and result.matched_by == "position"
    assert "compared by position" in result.warnings[0]
    assert {o.name: o.top1 is not None for o in result.outputs} == {"logits": True, "embedding": False}


def test_parity_fails_when_nothing_was_compared(tmp_path):
    a = linear_classifier(tmp_path / "a.onnx")
    with OnnxRuntimeRunner(a) as ref, OnnxRuntimeRunner(a) as got:
        empty = Dataset({"x": np.zeros((0, 8), np.float32)}, None, "empty", "")
        result = check_parity(ref, got, empty, 16, LOOSE)
    assert not result.passed and "no output was compared" in result.failures()[0]


def test_per_output_tolerances(tmp_path):
    a = linear_classifier(tmp_path / "a.onnx")
    b = linear_classifier(tmp_path / "b.onnx", noise=0.3)  # scores differ, features are the same
    assert not _parity(a, b).passed
    relaxed = Tolerance(
        cosine_min=0.9999, top1_min=0.99, outputs={"scores": OutputTolerance(cosine_min=0.5, top1_min=0)}
    )
    result = _parity(a, b, relaxed)
    assert result.passed and {o.name: o.passed for o in result.outputs} == {"scores": True, "features": True}


class _Counted(OnnxRuntimeRunner):
    """The real ONNX Runtime runner, counting the inferences it ran and its activations."""

    def __init__(self, path) -> None:
        super().__init__(path)
        self.runs = self.activations = 0

    def activate_impl(self) -> None:
        self.activations += 1
        super().activate_impl()

    def infer_impl(self, feed):
        self.runs += 1
        return super().infer_impl(feed)


def test_the_recording_runner_runs_each_feed_once_and_bounds_what_it_keeps(tmp_path):
    """The fallback's parity ran the source on the same data at every attempt: now once per export."""
    from edgekit.runners.base import RecordingRunner

    a, b = linear_classifier(tmp_path / "a.onnx"), linear_classifier(tmp_path / "b.onnx", noise=0.01)
    inner = _Counted(a)
    recording = RecordingRunner(inner)
    results = []
    for _ in range(3):  # three attempts
        with recording as ref, OnnxRuntimeRunner(b) as got:
            results.append(check_parity(ref, got, _data(), 16, LOOSE))
    assert inner.runs == 3 and inner.activations == 1 and not inner.is_active  # 48 samples in batches of 16
    assert results[0].outputs[0].cosine == results[2].outputs[0].cosine < 1.0
    with OnnxRuntimeRunner(a) as direct, OnnxRuntimeRunner(b) as got:
        assert check_parity(direct, got, _data(), 16, LOOSE).outputs[0].cosine == results[0].outputs[0].cosine
    # nothing kept past the byte budget: every feed runs again
    unkept = _Counted(a)
    with RecordingRunner(unkept, max_bytes=0) as ref:
        for _ in range(2):
            ref.infer({"x": _data(4).arrays["x"]})
    assert unkept.runs == 2
