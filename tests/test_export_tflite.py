"""TFLite / LiteRT targets: a digits CNN trained in Keras and in PyTorch through every tflite target,
run in LiteRT; the tiny transformer through the int8 targets; the integer-only check; device rules."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import artifact_accuracy, run_cli

import edgekit
from edgekit.backends.litert.tflite_file import read_tflite
from edgekit.exporter import export
from edgekit.spec import parse_input_spec
from edgekit_demo import zoo

TFLITE = ("tflite-fp32", "tflite-fp16", "tflite-dynamic", "tflite-int8", "tflite-int16x8")
IMAGE = (parse_input_spec(zoo.DIGITS_INPUT),)


@pytest.fixture(scope="module")
def keras_cnn(digits, workdir):
    x_train, y_train, _, _ = digits
    path = workdir / "keras_digits_cnn.keras"
    zoo.keras_digits_cnn(x_train, y_train).save(path)
    calib = workdir / "calib_nhwc.npz"
    np.savez(calib, image=x_train[:256].transpose(0, 2, 3, 1))
    return path, calib


@pytest.fixture(scope="module")
def tflite(tmp_path_factory, keras_cnn, cnn, calib_npz):
    """{(framework, target): ExportResult} for the Keras and the PyTorch digits CNN."""
    out = tmp_path_factory.mktemp("tflite")
    keras_path, keras_calib = keras_cnn
    results = {}
    for target in TFLITE:
        results["keras", target] = export(keras_path, target, out / "keras", calib=keras_calib)
        results["torch", target] = export(
            "edgekit_demo.zoo:digits_cnn", target, out / "torch", calib=calib_npz, weights=cnn[1], inputs=IMAGE
        )
    return results


def _test_images(digits, framework):
    _, _, x_test, y_test = digits
    return (x_test.transpose(0, 2, 3, 1) if framework == "keras" else x_test), y_test


@pytest.mark.parametrize("framework", ["keras", "torch"])
def test_every_tflite_target_runs_in_litert_and_keeps_accuracy(tflite, digits, framework):
    x, y = _test_images(digits, framework)
    fp32 = artifact_accuracy(tflite[framework, "tflite-fp32"].artifact, x, y)
    assert fp32 > 0.9
    for target in TFLITE:
        result = tflite[framework, target]
        assert result.artifact.suffix == ".tflite" and result.parity.passed, target
        assert artifact_accuracy(result.artifact, x, y) >= fp32 - 0.015, target


@pytest.mark.parametrize("framework", ["keras", "torch"])
def test_int8_file_is_integer_only_with_int8_io(tflite, framework):
    result = tflite[framework, "tflite-int8"]
    info = read_tflite(result.artifact)
    assert [t.dtype for t in info.inputs] == ["INT8"] and [t.dtype for t in info.outputs] == ["INT8"]
    assert info.float_ops() == []
    assert "CONV_2D" in info.op_types() and "FULLY_CONNECTED" in info.op_types()
    file_input = result.sidecar["tensors"]["inputs"][0]
    assert file_input["dtype"] == "float32"  # what the app feeds; the runner quantizes with:
    q = file_input["file_tensor"]["quantization"]
    assert q["scale"] == pytest.approx(1 / 255, rel=1e-3) and q["zero_point"] == -128  # inputs span [0, 1]
    assert "quantization" in result.sidecar["tensors"]["outputs"][0]["file_tensor"]
    assert result.sidecar["route"][-1]["float_fallback_ops"] == []


@pytest.mark.parametrize("framework", ["keras", "torch"])
def test_sizes_shrink_as_expected(tflite, framework):
    size = {t: tflite[framework, t].sidecar["size_bytes"] for t in TFLITE}
    assert 0.45 < size["tflite-fp16"] / size["tflite-fp32"] < 0.6
    for target in ("tflite-dynamic", "tflite-int8", "tflite-int16x8"):
        assert size[target] / size["tflite-fp32"] < 0.33, target  # int8 weights: about a quarter
    # fp32 and fp16 files compute in float; the quantized ones record their scheme
    assert read_tflite(tflite[framework, "tflite-fp32"].artifact).float_ops()
    assert tflite[framework, "tflite-int8"].sidecar["quantization"]["scheme_name"] == "tflite_int8"


def test_routes_in_the_sidecar(tflite):
    keras_route = [s["step"] for s in tflite["keras", "tflite-int8"].sidecar["route"]]
    torch_route = tflite["torch", "tflite-int8"].sidecar["route"]
    assert keras_route == ["keras->tflite"]
    assert [s["step"] for s in torch_route] == ["torch->onnx", "onnx->tflite"]
    assert torch_route[1]["static_shapes"] == {"image": [1, 1, 8, 8]}  # onnx2tf with every shape fixed
    # one calibration cap for every runtime: the converter saw what export read (256 of --calib)
    assert (
        torch_route[1]["calibration_samples"] == tflite["torch", "tflite-int8"].sidecar["calibration"]["samples"] == 256
    )
    assert torch_route[1]["applied"] == "full-integer"


def test_an_export_gives_the_same_bytes_whatever_this_process_converted_before(tflite, tmp_path, cnn, calib_npz):
    """onnx2tf's Keras layer names went into the file numbered on from earlier conversions in the process."""
    source = "edgekit_demo.zoo:digits_cnn"
    again = export(source, "tflite-int8", tmp_path, calib=calib_npz, weights=cnn[1], inputs=IMAGE)
    assert again.artifact.read_bytes() == tflite["torch", "tflite-int8"].artifact.read_bytes()


def test_transformer_encoder_dynamic_and_int8(tmp_path, transformer, digits, calib_npz):
    _, _, x_test, y_test = digits
    model, weights = transformer
    import torch

    with torch.inference_mode():
        float_acc = float((model(torch.from_numpy(x_test)).argmax(-1).numpy() == y_test).mean())
    for target in ("tflite-dynamic", "tflite-int8"):
        result = export(
            "edgekit_demo.zoo:tiny_transformer", target, tmp_path, calib=calib_npz, weights=weights, inputs=IMAGE
        )
        assert result.parity.passed
        assert artifact_accuracy(result.artifact, x_test, y_test) >= float_acc - 0.015, target
    ops = read_tflite(result.artifact).op_types()
    assert "BATCH_MATMUL" in ops and "SOFTMAX" in ops  # attention survived conversion, in int8
    assert read_tflite(result.artifact).float_ops() == []


def test_smoothquant_scales_the_onnx_graph_and_the_fallback_still_finds_the_layers_kept_float(
    tmp_path, transformer, digits, calib_npz, monkeypatch
):
    """--smoothquant scales activation outliers into the weights before onnx2tf (off by default); a smoothed
    layer's weights change, and the fallback still finds it in the file to keep it float. (The tiny transformer's
    groups lower their error less than 4x: every one that lowers it is smoothed here, so that some are.)"""
    from edgekit.backends.onnxruntime import smooth
    from edgekit.fallback import FallbackOptions

    monkeypatch.setattr(smooth, "MIN_GAIN_WITH_MUL", smooth.MIN_GAIN)

    _, weights = transformer
    kept = FallbackOptions(keep_float=("encoder.linear1",))
    common = dict(calib=calib_npz, weights=weights, inputs=IMAGE, fallback=kept)
    plain = export("edgekit_demo.zoo:tiny_transformer", "tflite-int8", tmp_path / "off", **common)
    assert plain.sidecar["route"][-1]["smoothing"] == "off (--smoothquant not given)"
    result = export(
        "edgekit_demo.zoo:tiny_transformer", "tflite-int8", tmp_path / "on", options={"smoothquant": True}, **common
    )
    step = result.sidecar["route"][-1]
    assert step["tool"].startswith("onnx2tf") and result.parity.passed
    assert step["smoothing"]["smoothed"] >= 1, step["smoothing"]
    assert "encoder.linear1" in step["float_layers"] and step["float_op_types"]["FULLY_CONNECTED"] == 1
    assert plain.artifact.read_bytes() != result.artifact.read_bytes()


@pytest.fixture
def litert_torch_route_only():
    """The LiteRT backend with only its litert-torch converter: the route an export takes after the ONNX route
    (which converts the tiny transformer correctly) fails."""
    import dataclasses

    from edgekit.backends import registry
    from edgekit.backends.litert import BACKEND

    only = tuple(c for c in BACKEND.converters if c.tool == "litert-torch")
    registry.register(dataclasses.replace(BACKEND, converters=only))
    yield
    registry.unregister("litert")


def test_litert_torch_int8_quantizes_the_linear_layers_and_keeps_the_ones_asked_float(
    litert_torch_route_only, tmp_path, transformer, digits, calib_npz
):
    """The litert-torch route's tflite-int8 (PT2E static int8): the linear layers compute in int8 except the one
    kept float, the non-linear ops and the I/O stay float, and the sidecar says so."""
    from edgekit.fallback import FallbackOptions

    _, _, x_test, y_test = digits
    _, weights = transformer
    kept = ("head",)
    result = export(
        "edgekit_demo.zoo:tiny_transformer",
        "tflite-int8",
        tmp_path,
        calib=calib_npz,
        weights=weights,
        inputs=IMAGE,
        fallback=FallbackOptions(keep_float=kept),
    )
    step = result.sidecar["route"][0]
    assert step["tool"] == "litert-torch" and step["applied"] == "full-integer" and result.parity.passed
    assert step["float_layers"] == ["(non-linear ops)", "head"]
    info = read_tflite(result.artifact)
    linear = [o for o in info.ops if o.op == "FULLY_CONNECTED"]
    # embed, the attention's in/out projections, the two feed-forward layers, head: only head computes in float
    assert len(linear) >= 5 and [o.computes_in_float for o in linear].count(True) == 1
    assert step["float_op_types"]["FULLY_CONNECTED"] == 1
    assert artifact_accuracy(result.artifact, x_test, y_test) >= 0.8


def test_a_partly_float_route_goes_last_and_never_to_an_integer_only_device():
    """tflite-int8 from PyTorch tries the ONNX route (full integer) before litert-torch's (non-linear ops float);
    a device that runs only listed ops gets the ONNX route alone. tflite-dynamic keeps litert-torch first."""
    from edgekit.backends.registry import backend_for_runtime
    from edgekit.exporter import _routes

    litert = backend_for_runtime("litert")

    def names(quantization, whole=False):
        return [route[-1].tool for route in _routes("torch", litert, quantization, whole)]

    assert names("full-integer")[-1] == "litert-torch" and len(names("full-integer")) == 2
    assert "litert-torch" not in names("full-integer", whole=True)
    assert names("dynamic")[0] == "litert-torch"


_OUTLIER_NORM = """
import torch

def outlier_norm():
    torch.manual_seed(0)
    fc1, norm, fc2 = torch.nn.Linear(16, 32), torch.nn.LayerNorm(32), torch.nn.Linear(32, 4)
    with torch.no_grad():
        fc1.weight[7] *= 100  # one output channel 100x the others: int8 LayerNorm pieces cannot hold both
    return torch.nn.Sequential(fc1, norm, torch.nn.ReLU(), fc2).eval()
"""


def test_a_file_float_only_in_its_non_linear_ops_comes_from_the_route_whose_layers_stay_whole(tmp_path, monkeypatch):
    """A LayerNorm reading an outlier channel fails the gate in int8: the ONNX route passes by keeping the
    non-linear ops float, as litert-torch's file does by design with whole layers, so that file is published
    (its outlier output channel given its own range) and the sidecar says why; the user's --keep-float keeps
    the ONNX route's file."""
    from edgekit.fallback import FallbackOptions

    (tmp_path / "outlier_norm_model.py").write_text(_OUTLIER_NORM)
    monkeypatch.syspath_prepend(str(tmp_path))
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "calib.npz", x=rng.normal(size=(128, 16)).astype(np.float32))
    common = dict(calib=tmp_path / "calib.npz", inputs=("x:float32:batchx16",))
    result = export("outlier_norm_model:outlier_norm", "tflite-int8", tmp_path / "a", **common)
    choice, step = result.sidecar["route_choice"], result.sidecar["route"][-1]
    assert step["tool"] == "litert-torch" and result.parity.passed, choice
    assert choice["tried"][0]["result"].startswith("passed keeping (non-linear ops) float"), choice
    assert step["output_ranges"]["balanced"] == 1 and "FULLY_CONNECTED" not in step["float_op_types"], step
    # edgekit diff reads the multiply after the layer as part of it: the layer pairs and compares as computed
    report = edgekit.diff(result.artifact, tmp_path / "calib.npz", reference="outlier_norm_model:outlier_norm",
                          reference_inputs=("x:float32:batchx16",))  # fmt: skip
    first = next(r for r in report.layers if r.layer == "0")
    assert first.compared and first.metrics["snr_db"] > 25, first
    pinned = FallbackOptions(keep_float=("(non-linear ops)",))
    kept = export("outlier_norm_model:outlier_norm", "tflite-int8", tmp_path / "b", fallback=pinned, **common)
    assert kept.sidecar["route"][-1]["tool"].startswith("onnx2tf") and kept.parity.passed


def test_float_ops_are_refused_unless_allowed(tmp_path, capsys):
    """The TFLite converter leaves SIN in float even with integer-only kernels requested; edgekit reads
    the written file and refuses to call it int8, unless the user allows the fallback."""
    import tensorflow as tf

    class Periodic(tf.Module):
        def __init__(self):
            self.w = tf.Variable(tf.random.stateless_normal([8, 16], seed=[1, 2]))
            self.v = tf.Variable(tf.random.stateless_normal([16, 3], seed=[3, 4]))

        @tf.function(input_signature=[tf.TensorSpec([None, 8], tf.float32, name="x")])
        def __call__(self, x):
            return {"y": tf.matmul(tf.sin(tf.matmul(x, self.w), name="periodic"), self.v)}

    module = Periodic()
    tf.saved_model.save(module, str(tmp_path / "periodic"), signatures={"serving_default": module.__call__})
    np.savez(tmp_path / "x.npz", x=np.random.default_rng(0).standard_normal((64, 8)).astype(np.float32))
    args = (tmp_path / "periodic", "-t", "tflite-int8", "--calib", tmp_path / "x.npz", "-o", tmp_path / "out")
    code, out = run_cli(capsys, "export", *args)
    assert code == 2 and "not integer-only" in out and "SIN (periodic)" in out
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())
    code, out = run_cli(capsys, "export", *args, "--allow-float-fallback")
    assert code == 0, out
    sidecar = __import__("json").loads((tmp_path / "out" / "periodic-tflite-int8.edgekit.json").read_text())
    assert [o["op"] for o in sidecar["route"][-1]["float_fallback_ops"]] == ["SIN"]
    assert sidecar["quantization"]["allow_float_fallback"] is True


def test_npu_profile_wants_full_integer_and_its_ops(tmp_path, cnn, transformer, calib_npz):
    from edgekit.errors import UsageError

    result = export(
        "edgekit_demo.zoo:digits_cnn",
        "tflite-int8",
        tmp_path,
        calib=calib_npz,
        weights=cnn[1],
        inputs=IMAGE,
        device="android-npu",
    )
    assert result.parity.passed and result.sidecar["device"]["name"] == "android-npu"
    with pytest.raises(UsageError, match="runs only full-integer litert files"):
        export(
            "edgekit_demo.zoo:digits_cnn", "tflite-fp32", tmp_path, weights=cnn[1], inputs=IMAGE, device="android-npu"
        )
    with pytest.raises(UsageError, match="does not run BATCH_MATMUL.*GATHER") as info:
        export(
            "edgekit_demo.zoo:tiny_transformer",
            "tflite-int8",
            tmp_path / "t",
            calib=calib_npz,
            weights=transformer[1],
            inputs=IMAGE,
            device="android-npu",
        )
    assert "It runs: CONV_2D" in info.value.hint
    assert not (tmp_path / "t").exists() or not list((tmp_path / "t").iterdir())


def test_bad_input_for_tflite(tmp_path, capsys, keras_cnn, calib_npz):
    keras_path, _ = keras_cnn
    code, out = run_cli(capsys, "export", keras_path, "-t", "tflite-int8", "-o", tmp_path / "a")
    assert code == 2 and "needs calibration data" in out
    code, out = run_cli(capsys, "export", keras_path, "-t", "tflite-int8", "--calib", calib_npz, "-o", tmp_path / "b")
    assert code == 2 and "dim 1 must be 8" in out  # NCHW calibration data for an NHWC model
    bad_dtype = tmp_path / "ints.npz"
    np.savez(bad_dtype, image=np.zeros((4, 8, 8, 1), np.int64))
    code, out = run_cli(capsys, "export", keras_path, "-t", "tflite-int8", "--calib", bad_dtype, "-o", tmp_path / "c")
    assert code == 2 and "int64" in out
    for folder in "abc":
        assert not (tmp_path / folder).exists() or not list((tmp_path / folder).iterdir())


def test_op_without_tflite_kernel_is_named(tmp_path, capsys):
    import tensorflow as tf

    class Determinant(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 4, 4], tf.float32, name="x")])
        def __call__(self, x):
            return {"det": tf.linalg.det(x, name="determinant")}

    module = Determinant()
    tf.saved_model.save(module, str(tmp_path / "det"), signatures={"serving_default": module.__call__})
    code, out = run_cli(capsys, "export", tmp_path / "det", "-t", "tflite-fp32", "-o", tmp_path / "out")
    assert code == 2 and "no TFLite kernel: MatrixDeterminant (in determinant)" in out
    assert "Traceback" not in out


def test_untraceable_keras_model(tmp_path, capsys):
    import tests_models

    model = tests_models.python_branch_keras()
    path = tmp_path / "branch.keras"
    model.save(path)
    # its class lives in the tests' own module: loading it imports that code, so only with --unsafe-load
    code, out = run_cli(capsys, "export", path, "-t", "tflite-fp32", "-o", tmp_path / "o")
    assert code == 2 and "class tests_models.PythonBranch" in out and "--unsafe-load" in out, out
    code, out = run_cli(capsys, "export", path, "-t", "tflite-fp32", "--input", "x:float32:batchx8", "-o",
                        tmp_path / "o", "--unsafe-load")  # fmt: skip
    assert code == 2 and "cannot be traced" in out and "SymbolicTensor" in out and "in call()" in out
    code, out = run_cli(capsys, "export", path, "-t", "tflite-fp32", "-o", tmp_path / "o", "--unsafe-load")
    assert code == 2 and "records no inputs" in out and "--input" in out


def test_other_source_kinds_reach_tflite(tmp_path, mlp, digits, calib_npz):
    """tf_keras .h5, TorchScript and ExportedProgram sources reach TFLite, each by the routes it can take."""
    import tf_keras
    import torch

    x_train, y_train, x_test, y_test = digits
    h5 = tf_keras.Sequential(
        [
            tf_keras.layers.Input((64,), name="pixels"),
            tf_keras.layers.Dense(32, activation="relu"),
            tf_keras.layers.Dense(10),
        ]
    )
    h5.compile("adam", tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    h5.fit(x_train.reshape(-1, 64), y_train, epochs=3, verbose=0)
    h5.save(tmp_path / "mlp.h5")
    np.savez(tmp_path / "pixels.npz", pixels=x_train[:128].reshape(-1, 64))
    result = export(tmp_path / "mlp.h5", "tflite-int8", tmp_path / "h5", calib=tmp_path / "pixels.npz")
    assert result.parity.passed and result.sidecar["source"]["kind"] == "tf-keras"

    module = mlp[0].eval()
    torch.jit.trace(module, torch.from_numpy(x_train[:2])).save(str(tmp_path / "mlp.pt"))
    batch = {"input": {0: torch.export.Dim("batch")}}
    torch.export.save(
        torch.export.export(module, (torch.from_numpy(x_train[:2]),), dynamic_shapes=batch), str(tmp_path / "mlp.pt2")
    )
    np.savez(tmp_path / "input.npz", input=x_train[:128])  # nn.Sequential's forward argument is `input`
    # TorchScript cannot go through torch.export (litert-torch): it comes through ONNX; an ExportedProgram can
    routes = {"mlp.pt": ["torch->onnx", "onnx->tflite"], "mlp.pt2": ["torch->tflite"]}
    for source, calib, name in (("mlp.pt", calib_npz, "image"), ("mlp.pt2", tmp_path / "input.npz", "input")):
        result = export(
            tmp_path / source,
            "tflite-dynamic",
            tmp_path / source.replace(".", "_"),
            calib=calib,
            inputs=IMAGE if source.endswith(".pt") else (),
        )
        assert result.parity.passed and [s["step"] for s in result.sidecar["route"]] == routes[source]
        assert artifact_accuracy(result.artifact, x_test, y_test, input_name=name) > 0.85


def test_onnx_source_to_tflite_int8(tmp_path, cnn, digits, calib_npz):
    _, _, x_test, y_test = digits
    onnx_file = export("edgekit_demo.zoo:digits_cnn", "onnx-fp32", tmp_path, weights=cnn[1], inputs=IMAGE).artifact
    result = export(onnx_file, "tflite-int8", tmp_path / "t", calib=calib_npz)
    assert result.parity.passed and [s["step"] for s in result.sidecar["route"]] == ["onnx->tflite"]
    assert read_tflite(result.artifact).float_ops() == []
    assert artifact_accuracy(result.artifact, x_test, y_test) >= artifact_accuracy(onnx_file, x_test, y_test) - 0.015


def test_converter_failure_is_reported_and_leaves_nothing(tmp_path, capsys):
    """No route converts singular values (no ONNX op, no litert-torch lowering): exit 1, each route's cause
    with the op named, no file."""
    code, out = run_cli(
        capsys, "export", "tests_models:no_tflite_route", "-t", "tflite-fp32", "--input", zoo.DIGITS_INPUT,
        "-o", tmp_path / "o",
    )  # fmt: skip
    assert code == 1 and "Traceback" not in out, out
    assert "aten::linalg_svdvals" in out and "routes tried before: torch->tflite (litert-torch)" in out
    assert "Lowering not found: aten._linalg_svd" in out
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").iterdir())


def test_the_tiny_causal_lm_reaches_tflite_through_onnx_when_litert_torch_refuses_it(tmp_path, capsys):
    """litert-torch's torch.export stops at the LM's data-dependent mask; the ONNX route (its graph folded for
    onnx2tf) converts it with parity, and the sidecar says why that route ran."""
    from edgekit_demo.zoo_text import LM_INPUTS

    inputs = [a for spec in LM_INPUTS for a in ("--input", spec)]
    code, out = run_cli(
        capsys, "export", "edgekit_demo.zoo_text:tiny_causal_lm", "-t", "tflite-fp32", *inputs, "-o", tmp_path
    )
    assert code == 0 and "parity passed" in out, out
    choice = json.loads(next(tmp_path.glob("*.edgekit.json")).read_text())["route_choice"]
    assert choice["chosen"].startswith("torch->onnx") and choice["tried"][0]["route"] == "torch->tflite (litert-torch)"
    assert choice["tried"][0]["result"].startswith("failed: litert-torch could not convert")


def test_onnx2tf_leaves_nothing_in_the_working_folder(tmp_path, monkeypatch, cnn, calib_npz):
    """onnx2tf creates ./saved_model even when told not to save one; edgekit points it into the staging folder."""
    monkeypatch.chdir(tmp_path)
    export("edgekit_demo.zoo:digits_cnn", "tflite-fp32", tmp_path / "out", calib=calib_npz, weights=cnn[1],
           inputs=IMAGE)  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_an_int8_output_too_coarse_for_its_range_is_named_and_float_io_keeps_it(tmp_path, capsys, digits):
    """A classifier with one class whose logit sits near -1000: the int8 output, in steps of about 4 over that
    range, ties the other classes, and no layer kept float undoes it. The refusal names the output and its steps;
    --float-io (float32 input and output, the op computing the output float, int8 inside) passes."""
    import keras

    keras.utils.set_random_seed(0)
    pixels = keras.Input((64,), name="pixels")
    logits = keras.layers.Dense(10, name="head")(keras.layers.Dense(32, activation="relu", name="hidden")(pixels))
    model = keras.Model(pixels, logits)
    weights, bias = model.get_layer("head").get_weights()
    bias[9] = -1000.0  # a class never chosen, which sets the output's range
    model.get_layer("head").set_weights([weights, bias])
    model.save(tmp_path / "wide.keras")
    np.savez(tmp_path / "calib.npz", pixels=digits[0][:256].reshape(256, 64))
    out = tmp_path / "out"
    args = ("export", tmp_path / "wide.keras", "-t", "tflite-int8", "--calib", tmp_path / "calib.npz", "-o", out)
    code, text = run_cli(capsys, *args)
    assert code == 1 and "No float fallback meets the gate" in text, text
    assert "int8 output" in text and "steps of" in text and "--float-io" in text and "Traceback" not in text
    assert not out.exists() or not list(out.iterdir())
    code, text = run_cli(capsys, *args, "--float-io")
    assert code == 0, text
    info = read_tflite(out / "wide-tflite-int8.tflite")
    assert [t.dtype for t in (*info.inputs, *info.outputs)] == ["FLOAT32", "FLOAT32"]
    hidden, head = (o for o in info.ops if o.op == "FULLY_CONNECTED")
    assert not hidden.computes_in_float and head.computes_in_float  # int8 inside; the output's op float
    sidecar = json.loads((out / "wide-tflite-int8.edgekit.json").read_text())
    assert sidecar["route"][-1]["io"].startswith("float32") and sidecar["route"][-1]["float_layers"] == ["(output ops)"]
    assert sidecar["quantization"]["fallback"]["float_layers"] == []  # it passed at the first attempt
