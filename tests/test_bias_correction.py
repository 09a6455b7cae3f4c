"""Bias correction before static ONNX Runtime int8: the int8 weights' rounding shifts each output channel's mean;
the corrected bias takes that shift off, exactly where the layers are linear, and the export records it."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

CHANNELS, SIDE, CLASSES = 8, 4, 5


def _graph(weights: dict[str, np.ndarray], biases: dict[str, np.ndarray]):
    """A pointwise Conv, a depthwise Conv (no bias: correction adds one), a global average pool and a Gemm:
    linear, and the pool makes the Gemm's input the channels' means, so a corrected mean carries through exactly."""
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "pw", "pw_b"], ["a"], name="pointwise"),
            helper.make_node("Conv", ["a", "dw"], ["b"], name="depthwise", group=CHANNELS),
            helper.make_node("GlobalAveragePool", ["b"], ["p"], name="pool"),
            helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
            helper.make_node("Gemm", ["f", "fc", "fc_b"], ["y"], name="fc", transB=1),
        ],
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", CHANNELS, SIDE, SIDE])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", CLASSES])],
        [numpy_helper.from_array(v, k) for k, v in {**weights, **biases}.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    return model


def _run(model, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def _rounded(model, grid):
    """The model with its weights as the quantizer holds them (its biases as they are)."""
    from onnx import numpy_helper

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    for init in copy.graph.initializer:
        if init.name in ("pw", "dw", "fc"):
            init.CopyFrom(numpy_helper.from_array(grid.rounded(numpy_helper.to_array(init)), init.name))
    return copy


def test_corrected_biases_give_back_the_float_layers_mean_output():
    from edgekit.backends.onnxruntime.bias_correction import WeightGrid, correct_biases
    from edgekit.data import Dataset

    rng = np.random.default_rng(0)
    weights = {
        "pw": rng.normal(0, 0.5, (CHANNELS, CHANNELS, 1, 1)).astype(np.float32),
        "dw": rng.normal(0, 0.5, (CHANNELS, 1, 1, 1)).astype(np.float32),
        "fc": rng.normal(0, 0.5, (CLASSES, CHANNELS)).astype(np.float32),
    }
    biases = {"pw_b": np.zeros(CHANNELS, np.float32), "fc_b": np.zeros(CLASSES, np.float32)}
    x = (rng.normal(0, 1, (64, CHANNELS, SIDE, SIDE)) + rng.uniform(1, 3, (1, CHANNELS, 1, 1))).astype(np.float32)
    model = _graph(weights, biases)
    grid = WeightGrid(qmax=7, per_channel=True)  # a coarse grid, so the rounding error is large and visible
    exact = _run(model, x).mean(axis=0)
    before = np.abs(_run(_rounded(model, grid), x).mean(axis=0) - exact).max()
    notes = correct_biases(model, Dataset({"x": x}, None, "test", "0"), 16, grid, skip=set())
    after = np.abs(_run(_rounded(model, grid), x).mean(axis=0) - exact).max()
    assert notes["layers"] == 3 and any(i.name.endswith("_corrected_bias") for i in model.graph.initializer)
    assert before > 0.05 and after < 1e-4 * max(1.0, before), (before, after)
    skipped = _graph(weights, biases)  # a layer kept float keeps its bias
    assert correct_biases(skipped, Dataset({"x": x}, None, "test", "0"), 16, grid, skip={"fc"})["layers"] == 2


def test_static_int8_records_the_correction_only_when_asked(tmp_path, cnn, calib_npz):
    from edgekit.exporter import export
    from edgekit.spec import parse_input_spec
    from edgekit_demo import zoo

    common = dict(calib=calib_npz, weights=cnn[1], inputs=(parse_input_spec(zoo.DIGITS_INPUT),))
    plain = export("edgekit_demo.zoo:digits_cnn", "onnx-int8", tmp_path / "plain", **common)
    corrected = export(
        "edgekit_demo.zoo:digits_cnn", "onnx-int8", tmp_path / "bc", options={"bias_correction": True}, **common
    )
    assert plain.sidecar["quantization"]["bias_correction"] == "off (--bias-correction not given)"
    assert plain.sidecar["quantization"]["adaround"] == "off (--adaround not given)"
    record = corrected.sidecar["quantization"]["bias_correction"]
    assert record["layers"] >= 4 and record["max_shift"] > 0 and corrected.parity.passed
    assert corrected.artifact.read_bytes() != plain.artifact.read_bytes()
