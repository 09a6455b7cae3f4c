"""Real exports of trained models to every ONNX target: parity, accuracy, size, sidecar."""

from __future__ import annotations

import json

import onnx
import pytest
from helpers import artifact_accuracy

from edgekit.exporter import export
from edgekit.spec import parse_input_spec
from edgekit_demo import zoo

ONNX_TARGETS = ["onnx-fp32", "onnx-fp16", "onnx-int8-dynamic", "onnx-int8"]
IMAGE = (parse_input_spec(zoo.DIGITS_INPUT),)


@pytest.fixture(scope="module")
def exported(request, tmp_path_factory, cnn, mlp, transformer, calib_npz):
    """Every built-in model exported to every ONNX target once for this module."""
    out = tmp_path_factory.mktemp("onnx")
    results = {}
    for name, (_model, weights) in {"digits_mlp": mlp, "digits_cnn": cnn, "tiny_transformer": transformer}.items():
        for target in ONNX_TARGETS:
            results[name, target] = export(
                f"edgekit_demo.zoo:{name}", target, out / name, calib=calib_npz, weights=weights, inputs=IMAGE
            )
    return results


@pytest.mark.parametrize("model", ["digits_mlp", "digits_cnn", "tiny_transformer"])
@pytest.mark.parametrize("target", ONNX_TARGETS)
def test_export_passes_parity_and_keeps_accuracy(exported, digits, model, target):
    _, _, x_test, y_test = digits
    result = exported[model, target]
    assert result.artifact.exists() and result.parity.passed
    assert result.parity.inputs.endswith("calib.npz"), "parity must run on the real calibration data"
    assert result.parity.samples == 256
    out = result.parity.outputs[0]
    assert out.top1 is not None and out.top1 >= 0.9
    float_acc = artifact_accuracy(exported[model, "onnx-fp32"].artifact, x_test, y_test)
    assert float_acc > 0.85, "the trained model should be a real classifier"
    assert artifact_accuracy(result.artifact, x_test, y_test) >= float_acc - 0.015


@pytest.mark.parametrize("model", ["digits_cnn"])  # the MLP's 5k weights are too few: graph overhead dominates
def test_int8_files_are_smaller(exported, model):
    fp32 = exported[model, "onnx-fp32"].sidecar["size_bytes"]
    assert exported[model, "onnx-int8"].sidecar["size_bytes"] < 0.4 * fp32
    assert exported[model, "onnx-int8-dynamic"].sidecar["size_bytes"] < 0.5 * fp32
    assert exported[model, "onnx-fp16"].sidecar["size_bytes"] < 0.6 * fp32


def test_sidecar_records_provenance(exported, calib_npz):
    result = exported["digits_cnn", "onnx-int8"]
    sidecar = json.loads(result.artifact.with_name(result.artifact.stem + ".edgekit.json").read_text())
    assert sidecar["target"] == "onnx-int8"
    assert sidecar["device"]["name"]
    assert sidecar["route"][0]["step"] == "torch->onnx"
    assert sidecar["tools"]["onnxruntime"] and sidecar["tools"]["torch"]
    assert sidecar["tensors"]["inputs"][0]["name"] == "image"
    assert sidecar["tensors"]["inputs"][0]["shape"][1:] == [1, 8, 8]
    assert len(sidecar["source"]["sha256"]) == 64
    assert sidecar["calibration"]["path"] == str(calib_npz) and len(sidecar["calibration"]["sha256"]) == 64
    assert sidecar["parity"]["passed"] is True
    assert sidecar["quantization"]["scheme_name"] == "u8s8_reduce_range" or sidecar["device"]["name"] != "x86-avx2"
    assert sidecar["quantization"]["quantized_ops"].get("Conv", 0) == 2


def test_static_int8_keeps_float_ops_float(exported):
    """Softmax and LayerNorm have no int8 kernel on this runtime: they must not sit between DQ and Q."""
    quant = exported["tiny_transformer", "onnx-int8"].sidecar["quantization"]
    assert quant["quantized_ops"].get("MatMul", 0) + quant["quantized_ops"].get("Gemm", 0) > 0
    assert "Softmax" in quant["float_op_types"]
    model = onnx.load(str(exported["tiny_transformer", "onnx-int8"].artifact))
    producer = {o: n.op_type for n in model.graph.node for o in n.output}
    consumers: dict[str, set[str]] = {}
    for node in model.graph.node:
        for i in node.input:
            consumers.setdefault(i, set()).add(node.op_type)
    checked = 0
    for node in model.graph.node:
        if node.op_type in ("Softmax", "LayerNormalization"):
            checked += 1
            wrapped = producer.get(node.input[0]) == "DequantizeLinear" and consumers.get(node.output[0]) == {
                "QuantizeLinear"
            }
            assert not wrapped, f"{node.op_type} {node.name} was quantized"
    assert checked >= 1


def test_dynamic_int8_quantizes_linear_layers(exported):
    quant = exported["digits_mlp", "onnx-int8-dynamic"].sidecar["quantization"]
    assert quant["gemm_rewritten_as_matmul"] == 2
    assert quant["quantized_ops"] == {"MatMulInteger": 2}


def test_fp16_keeps_float32_io(exported):
    model = onnx.load(str(exported["digits_cnn", "onnx-fp16"].artifact))
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in model.graph.initializer)


@pytest.mark.parametrize(
    "device,act_dtype,reduce_range",
    [
        ("arm64", onnx.TensorProto.INT8, False),
        ("x86-vnni", onnx.TensorProto.UINT8, False),
        ("x86-avx2", onnx.TensorProto.UINT8, True),
    ],
)
def test_device_profile_changes_the_int8_recipe(tmp_path, cnn, calib_npz, device, act_dtype, reduce_range):
    _, weights = cnn
    result = export(
        "edgekit_demo.zoo:digits_cnn",
        "onnx-int8",
        tmp_path,
        calib=calib_npz,
        weights=weights,
        inputs=IMAGE,
        device=device,
    )
    assert result.sidecar["device"]["name"] == device
    assert result.sidecar["quantization"]["reduce_range"] is reduce_range
    model = onnx.load(str(result.artifact))
    inits = {i.name: i for i in model.graph.initializer}
    # the zero point of the first activation QuantizeLinear carries the activation dtype
    q = next(n for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == "image")
    assert inits[q.input[2]].data_type == act_dtype
    # the int8 weights span what OrtPlan.weight_qmax says (smoothing and bias correction model that grid)
    from onnx import numpy_helper

    from edgekit.backends.registry import backend_for_runtime
    from edgekit.catalog import get_device, get_target
    from edgekit.catalog.resolve import resolve

    plan = backend_for_runtime("onnxruntime").plan(resolve(get_target("onnx-int8"), get_device(device)))
    weights_q = [numpy_helper.to_array(i) for i in inits.values() if i.data_type == onnx.TensorProto.INT8 and i.dims]
    assert max(int(abs(w.astype(int)).max()) for w in weights_q if w.ndim >= 2) == plan.weight_qmax


def _activation_scales(path) -> dict[str, float]:
    """Each quantized activation's scale in a QDQ file (by the tensor it quantizes)."""
    from onnx import numpy_helper

    model = onnx.load(str(path))
    inits = {i.name: i for i in model.graph.initializer}
    return {
        n.input[0]: float(numpy_helper.to_array(inits[n.input[1]]))
        for n in model.graph.node
        if n.op_type == "QuantizeLinear" and n.input[0] not in inits
    }


@pytest.mark.parametrize("method", ["percentile", "mse"])
def test_calibration_methods_clip_ranges_that_minmax_stretches(method, exported, tmp_path, cnn, calib_npz):
    """--calibration percentile sets each activation range to the 99.999th percentile, mse to the clipping with
    the least squared int8 error: never wider than minmax's, narrower somewhere, and the file still keeps parity;
    the sidecar says which method ran."""
    minmax = exported["digits_cnn", "onnx-int8"]
    result = export("edgekit_demo.zoo:digits_cnn", "onnx-int8", tmp_path, calib=calib_npz, weights=cnn[1],
                    inputs=IMAGE, options={"calibration": method})  # fmt: skip
    assert result.parity.passed and minmax.sidecar["quantization"]["calibration"] == "minmax"
    assert result.sidecar["quantization"]["calibration"] == method
    wide, clipped = _activation_scales(minmax.artifact), _activation_scales(result.artifact)
    assert wide.keys() == clipped.keys() and len(wide) >= 3
    assert all(clipped[t] <= wide[t] * (1 + 1e-6) for t in wide) and any(clipped[t] < 0.99 * wide[t] for t in wide)


def test_keep_sensitive_pins_the_most_sensitive_layers_before_the_first_attempt(tmp_path, cnn, calib_npz, capsys):
    """--keep-sensitive N measures the sensitivity first and keeps the N layers at the top of the fallback's
    order float from the first attempt (what `edgekit search` varies as a keep-float set)."""
    from helpers import run_cli

    code, out = run_cli(capsys, "export", "edgekit_demo.zoo:digits_cnn", "--weights", cnn[1], "--input",
                        zoo.DIGITS_INPUT, "-t", "onnx-int8", "--calib", calib_npz, "--keep-sensitive", "2",
                        "-o", tmp_path)  # fmt: skip
    assert code == 0, out
    record = json.loads((tmp_path / "digits_cnn-onnx-int8.edgekit.json").read_text())["quantization"]["fallback"]
    ranked = [row["layer"] for row in record["sensitivity"]]
    assert record["keep_sensitive"] == 2 and record["pinned"] == ranked[:2]
    assert [f["layer"] for f in record["float_layers"]] == ranked[:2] and len(record["attempts"]) == 1
    code, out = run_cli(capsys, "export", "edgekit_demo.zoo:digits_cnn", "--weights", cnn[1], "--input",
                        zoo.DIGITS_INPUT, "-t", "onnx-fp16", "--keep-sensitive", "1", "-o", tmp_path)  # fmt: skip
    assert code == 2 and "--keep-sensitive: onnx-fp16" in out and "no layers edgekit can keep float" in out


def test_mse_ranges_clip_a_long_tail_and_keep_a_bounded_one():
    """Laplace values (a long thin tail, as activations have): the MSE range clips the last few values, which
    minmax would stretch every level for, and keeps the bulk (the optimum for 8 bits is near 10 scales); uniform
    values have no tail worth clipping and keep their whole range."""
    import numpy as np

    from edgekit.backends.onnxruntime.ranges import mse_range

    rng = np.random.default_rng(0)
    for values, (want_low, want_high) in (
        (rng.laplace(0, 1, 100_000), ((-11, -8), (8, 11))),
        (rng.uniform(0, 4, 100_000), ((0, 0), (3.9, 4))),
    ):
        reach = float(np.abs(values).max())
        counts, edges = np.histogram(values.astype(np.float32), bins=2048, range=(-reach, reach))
        low, high = mse_range(counts, edges, float(values.min()), float(values.max()))
        assert want_low[0] <= low <= want_low[1] and want_high[0] <= high <= want_high[1], (low, high)
        assert min(values.min(), 0) <= low and high <= max(values.max(), 0)  # never wider than minmax
