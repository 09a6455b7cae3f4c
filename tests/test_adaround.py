"""AdaRound before static ONNX Runtime int8: each weight's rounding is learned against its layer's output on the
calibration data; the weights are written on the int8 grid, so ONNX Runtime's own rounding reproduces the choice."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("torch")

CHANNELS, SIDE, HIDDEN, CLASSES = 8, 6, 16, 5
WEIGHTS = ("pw", "dw", "fc", "head")


def _graph(rng):
    """A pointwise Conv, a depthwise Conv, a Gemm and a MatMul: every layer kind AdaRound learns."""
    from onnx import TensorProto, helper, numpy_helper

    values = {
        "pw": rng.normal(0, 0.5, (CHANNELS, CHANNELS, 1, 1)),
        "dw": rng.normal(0, 0.5, (CHANNELS, 1, 3, 3)),
        "fc": rng.normal(0, 0.3, (HIDDEN, CHANNELS * SIDE * SIDE)),  # Gemm, transB: [out, in]
        "head": rng.normal(0, 0.5, (HIDDEN, CLASSES)),  # MatMul: [in, out]
        "pw_b": rng.normal(0, 0.1, CHANNELS),
    }
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "pw", "pw_b"], ["a"], name="pointwise"),
            helper.make_node("Relu", ["a"], ["ar"], name="relu"),
            helper.make_node("Conv", ["ar", "dw"], ["b"], name="depthwise", group=CHANNELS, pads=[1, 1, 1, 1]),
            helper.make_node("Flatten", ["b"], ["f"], name="flatten"),
            helper.make_node("Gemm", ["f", "fc"], ["h"], name="fc", transB=1),
            helper.make_node("MatMul", ["h", "head"], ["y"], name="head"),
        ],
        "layers",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", CHANNELS, SIDE, SIDE])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", CLASSES])],
        [numpy_helper.from_array(v.astype(np.float32), k) for k, v in values.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    return model


def _weights(model) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    return {i.name: numpy_helper.to_array(i) for i in model.graph.initializer if i.name in WEIGHTS}


def _with(model, weights: dict[str, np.ndarray]):
    from onnx import numpy_helper

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    for init in copy.graph.initializer:
        if init.name in weights:
            init.CopyFrom(numpy_helper.from_array(weights[init.name].astype(np.float32), init.name))
    return copy


def _run(model, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def _as_out_in(name: str, w: np.ndarray) -> np.ndarray:
    return w.T if name == "head" else w


def _data(rng, n: int) -> np.ndarray:
    """Inputs correlated across channels and pixels, as images are (three sources mixed into the channels,
    each pixel repeated 2x2, an offset per channel). On uncorrelated inputs rounding to nearest is already the
    least output error, and nothing is left to learn."""
    mixing = np.random.default_rng(99).normal(0, 1, (CHANNELS, 3))
    sources = rng.normal(0, 1, (n, 3, SIDE // 2, SIDE // 2))
    x = np.einsum("cs,nshw->nchw", mixing, sources).repeat(2, axis=2).repeat(2, axis=3)
    return (x + np.linspace(-1, 1, CHANNELS)[None, :, None, None]).astype(np.float32)


def test_learned_rounding_stays_on_the_grid_and_beats_rounding_to_nearest_on_held_out_inputs():
    from edgekit.backends.onnxruntime.adaround import AdaRoundSettings, adaround
    from edgekit.backends.onnxruntime.bias_correction import WeightGrid
    from edgekit.data import Dataset

    rng = np.random.default_rng(0)
    model, calibration, held_out = _graph(rng), _data(rng, 128), _data(rng, 128)
    grid = WeightGrid(qmax=7, per_channel=True)  # 4-bit: rounding to nearest costs much, so the choice matters
    original = _weights(model)
    nearest = {k: _as_out_in(k, grid.rounded(_as_out_in(k, w))) for k, w in original.items()}
    memo: dict = {}
    notes = adaround(model, Dataset({"x": calibration}, None, "t", "0"), 32, grid, set(), AdaRoundSettings(), memo)
    learned = _weights(model)
    assert notes["layers"] == 4 and notes["median_error_ratio"] < 0.9, notes
    assert 0 < notes["weights_rounded_away_from_nearest"] < 0.5
    for name, w in learned.items():
        out_in = _as_out_in(name, w)
        assert np.array_equal(grid.rounded(out_in), out_in), name  # on the grid: rounding it changes nothing
        peak = lambda v: np.abs(v.reshape(len(v), -1)).max(axis=1)
        np.testing.assert_allclose(peak(out_in), peak(_as_out_in(name, original[name])), rtol=1e-6)  # same scales
    assert any(not np.array_equal(learned[k], nearest[k]) for k in WEIGHTS)
    exact = _run(_with(model, original), held_out)
    error = lambda weights: float(((_run(_with(model, weights), held_out) - exact) ** 2).mean())
    assert error(learned) < 0.8 * error(nearest), (error(learned), error(nearest))
    again = _graph(np.random.default_rng(0))  # what an export's later fallback attempt does: nothing relearned
    assert (
        adaround(again, Dataset({"x": held_out}, None, "t", "1"), 32, grid, {"fc"}, AdaRoundSettings(), memo)["layers"]
        == 3
    )
    kept = _weights(again)
    assert np.array_equal(kept["fc"], original["fc"]) and np.array_equal(kept["dw"], learned["dw"])


def test_onnx_runtime_quantizes_the_learned_weights_to_exactly_the_learned_integers(tmp_path):
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    from edgekit.backends.onnxruntime.adaround import AdaRoundSettings, adaround
    from edgekit.backends.onnxruntime.bias_correction import WeightGrid
    from edgekit.backends.onnxruntime.taps import OnnxTaps
    from edgekit.data import Dataset

    rng = np.random.default_rng(1)
    model, calibration = _graph(rng), _data(rng, 64)
    grid = WeightGrid(qmax=127, per_channel=True)  # what onnx-int8 uses on a CPU with VNNI
    notes = adaround(model, Dataset({"x": calibration}, None, "t", "0"), 32, grid, set(), AdaRoundSettings(200))
    assert notes["weights_rounded_away_from_nearest"] > 0
    onnx.save(model, str(tmp_path / "learned.onnx"))

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{"x": calibration[i : i + 16]} for i in range(0, 64, 16)])

        def get_next(self):
            return next(self.batches, None)

    quantize_static(str(tmp_path / "learned.onnx"), str(tmp_path / "int8.onnx"), Reader(),
                    quant_format=QuantFormat.QDQ, per_channel=True, weight_type=QuantType.QInt8,
                    activation_type=QuantType.QInt8, op_types_to_quantize=["Conv", "Gemm", "MatMul"],
                    extra_options={"WeightSymmetric": True})  # fmt: skip
    written = {layer.name: layer for layer in OnnxTaps(tmp_path / "int8.onnx").layers}
    learned = _weights(model)
    for node, name in (("pointwise", "pw"), ("depthwise", "dw"), ("fc", "fc"), ("head", "head")):
        assert written[node].quantization.startswith("w int8 per-channel"), written[node]
        np.testing.assert_allclose(written[node].weight, learned[name], rtol=1e-5, atol=1e-7)


def test_export_records_adaround_and_says_why_bias_correction_did_not_run(tmp_path, cnn, calib_npz):
    from edgekit.exporter import export
    from edgekit.spec import parse_input_spec
    from edgekit_demo import zoo

    result = export(
        "edgekit_demo.zoo:digits_cnn",
        "onnx-int8",
        tmp_path / "ada",
        calib=calib_npz,
        weights=cnn[1],
        inputs=(parse_input_spec(zoo.DIGITS_INPUT),),
        options={"adaround": True, "bias_correction": True},
    )
    quantization = result.sidecar["quantization"]
    record = quantization["adaround"]
    assert record["layers"] >= 4 and 0 < record["median_error_ratio"] <= 1.0 and result.parity.passed
    assert quantization["bias_correction"].startswith("off: --adaround fits each layer's output")


def _int8_weights(path) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Each FULLY_CONNECTED/CONV weight of a .tflite file, by op position: its int8 values and per-channel scales."""
    from ai_edge_litert.interpreter import Interpreter

    from edgekit.backends.litert.tflite_file import WEIGHTED_OPS

    interpreter = Interpreter(model_path=str(path))
    details = {d["index"]: d for d in interpreter.get_tensor_details()}
    found = {}
    for position, op in enumerate(o for o in interpreter._get_ops_details() if o["op_name"] in WEIGHTED_OPS):
        weight = details[op["inputs"][1]]
        found[position] = interpreter.get_tensor(weight["index"]), weight["quantization_parameters"]["scales"]
    return found


def test_tflite_int8_takes_the_learned_rounding_through_the_converter(tmp_path, cnn, calib_npz):
    """AdaRound before onnx2tf: the converter's per-channel scales stay those of rounding to nearest, and its int8
    weights are the learned ones: each within one step of the nearest, some of them the other way."""
    from edgekit.exporter import export
    from edgekit.spec import parse_input_spec
    from edgekit_demo import zoo

    files = {}
    for name, options in (("nearest", {}), ("adaround", {"adaround": True})):
        result = export(
            "edgekit_demo.zoo:digits_cnn",
            "tflite-int8",
            tmp_path / name,
            calib=calib_npz,
            weights=cnn[1],
            inputs=(parse_input_spec(zoo.DIGITS_INPUT),),
            options=options,
        )
        assert result.parity.passed
        files[name] = result
    step = files["adaround"].sidecar["route"][-1]
    assert step["adaround"]["layers"] >= 3, step["adaround"]
    assert files["nearest"].sidecar["route"][-1]["adaround"] == "off (--adaround not given)"
    nearest, learned = _int8_weights(files["nearest"].artifact), _int8_weights(files["adaround"].artifact)
    assert len(nearest) == len(learned) >= 3
    flipped = 0
    for position, (q, scales) in nearest.items():
        q_learned, scales_learned = learned[position]
        np.testing.assert_allclose(scales_learned, scales, rtol=1e-6)
        step_apart = np.abs(q_learned.astype(int) - q.astype(int))
        assert step_apart.max() <= 1, position
        flipped += int(step_apart.sum())
    assert flipped > 0
