"""Activation smoothing before static ONNX Runtime int8: exact in float, and it is what lets a layer whose input
has outlier channels (as BERT's LayerNorm and GELU outputs have) quantize without losing its answers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.helpers import run_cli

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

WIDTH, HIDDEN, CLASSES = 64, 128, 10
OUTLIERS = [3, 17, 40]  # channels 80x the others, read lightly by the layer


def _mlp(path) -> None:
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w1 = rng.normal(0, 1 / np.sqrt(WIDTH), (WIDTH, HIDDEN)).astype(np.float32)
    w1[OUTLIERS] /= 30
    w2 = rng.normal(0, 1 / np.sqrt(HIDDEN), (HIDDEN, CLASSES)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w1"], ["h"], name="fc1"),
            helper.make_node("Relu", ["h"], ["r"], name="relu"),
            helper.make_node("MatMul", ["r", "w2"], ["y"], name="fc2"),
        ],
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", WIDTH])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", CLASSES])],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.save(model, str(path))


def _inputs(n: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, WIDTH)).astype(np.float32)
    x[:, OUTLIERS] *= 80
    return x


@pytest.fixture
def mlp(tmp_path):
    path = tmp_path / "mlp.onnx"
    _mlp(path)
    np.savez(tmp_path / "calib.npz", x=_inputs(256, 1))
    return path


def _run(path, x: np.ndarray) -> np.ndarray:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


def test_smoothing_is_exact_in_float_and_picks_a_strength_per_group(mlp):
    from edgekit.backends.onnxruntime.smooth import ALPHAS, Int8Grid, smooth
    from edgekit.data import Dataset

    model = onnx.load(str(mlp))
    notes = smooth(model, Dataset({"x": _inputs(64, 1)}, None, "test", ""), 16, Int8Grid(False, 127))
    # one group per weighted MatMul here; the input with outliers is smoothed, before the layer that reads it
    assert notes["groups"] == 2 and notes["smoothed"] >= 1, notes
    assert [float(a) for a in notes["strengths"]] and all(float(a) in ALPHAS for a in notes["strengths"]), notes
    assert notes["median_error_ratio"] < 0.5, notes
    first, second = model.graph.node[:2]
    assert (first.op_type, first.input[0], second.name, second.input[0]) == ("Mul", "x", "fc1", first.output[0])
    x = _inputs(100, 2)
    smoothed = mlp.with_name("smoothed.onnx")
    onnx.save(model, str(smoothed))
    np.testing.assert_allclose(_run(smoothed, x), _run(mlp, x), rtol=1e-4, atol=1e-4)


def test_a_group_that_needs_a_mul_is_smoothed_only_when_its_error_falls_4x(mlp):
    """Mild outlier channels (2x): smoothing would lower the simulated error, but not 4x, and the division would
    cost a Mul before the layer: nothing is smoothed, and the sidecar says why."""
    from edgekit.backends.onnxruntime.smooth import MIN_GAIN, MIN_GAIN_WITH_MUL, Int8Grid, smooth
    from edgekit.data import Dataset

    x = np.random.default_rng(1).normal(size=(64, WIDTH)).astype(np.float32)
    x[:, OUTLIERS] *= 2
    model = onnx.load(str(mlp))
    notes = smooth(model, Dataset({"x": x}, None, "test", ""), 16, Int8Grid(False, 127))
    assert MIN_GAIN_WITH_MUL < MIN_GAIN and notes["smoothed"] == 0, notes
    assert notes[f"not_worth_a_mul (error not {1 / MIN_GAIN_WITH_MUL:g}x lower)"] == 2, notes
    assert "Mul" not in [n.op_type for n in model.graph.node]


def test_static_int8_passes_its_gate_with_smoothing_and_fails_without(mlp, tmp_path, capsys):
    calib = str(tmp_path / "calib.npz")
    code, out = run_cli(capsys, "export", str(mlp), "-t", "onnx-int8", "--calib", calib, "--no-fallback", "-o",
                        str(tmp_path / "smooth"))  # fmt: skip
    assert code == 0, out
    artifact = tmp_path / "smooth" / "mlp-onnx-int8.onnx"
    sidecar = json.loads(artifact.with_name("mlp-onnx-int8.edgekit.json").read_text())
    q = sidecar["quantization"]
    assert q["smoothing"]["smoothed"] >= 1 and q["float_output_ops"] == ["MatMul", "Gemm"], q
    # the int8 products are dequantized to float, never requantized: no QuantizeLinear reads a MatMul output
    graph = onnx.load(str(artifact)).graph
    matmul_outputs = {o for n in graph.node if n.op_type == "MatMul" for o in n.output}
    assert not [n for n in graph.node if n.op_type == "QuantizeLinear" and n.input[0] in matmul_outputs]
    x = _inputs(500, 2)
    ref, got = _run(mlp, x), _run(artifact, x)
    assert (got.argmax(1) == ref.argmax(1)).mean() > 0.95

    # without smoothing, the per-tensor scale of the outlier input leaves the other channels a few levels
    code, out = run_cli(capsys, "export", str(mlp), "-t", "onnx-int8", "--calib", calib, "--no-fallback",
                        "--no-smooth", "-o", str(tmp_path / "plain"))  # fmt: skip
    assert code == 1 and "top-1 agreement" in out, out
    assert not (tmp_path / "plain" / "mlp-onnx-int8.onnx").exists()
