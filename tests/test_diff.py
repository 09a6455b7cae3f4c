"""edgekit diff: every weighted layer of a file against its source in the file's own runtime, the first
divergent layer named on files with planted faults, two files against each other, bad input."""

from __future__ import annotations

import json
import shutil

import jsonschema
import numpy as np
import pytest
from helpers import run_cli

import edgekit
from edgekit.errors import DataError, UsageError
from edgekit.exporter import export
from edgekit.layerdiff import diff
from edgekit.layerdiff.metrics import best_layout, lay_out
from edgekit.layerdiff.schema import SCHEMA_FILE
from edgekit.spec import parse_input_spec
from edgekit_demo import zoo

IMAGE = (parse_input_spec(zoo.DIGITS_INPUT),)
SOURCE = "edgekit_demo.zoo:digits_cnn"
LAYERS = ["0", "3", "8", "10"]  # the CNN's two convolutions and two linears, in execution order


@pytest.fixture(scope="module")
def files(tmp_path_factory, cnn, calib_npz):
    out = tmp_path_factory.mktemp("diff")
    return {
        t: export(SOURCE, t, out, calib=calib_npz, weights=cnn[1], inputs=IMAGE).artifact
        for t in ("onnx-int8", "tflite-int8", "onnx-fp32", "openvino-int8", "openvino-fp32")
    }


def _diff(path, test_npz, cnn, **kw):
    """Through the public Python API (edgekit.diff), as a user would call it."""
    return edgekit.diff(path, test_npz, reference=SOURCE, reference_weights=cnn[1], reference_inputs=IMAGE, **kw)


def _plant_onnx_weight_scale(src, dst, layer_index: int, factor: float) -> None:
    """Multiply the weight scale of the layer_index-th weighted node (the file is otherwise untouched)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(src))
    producer = {o: n for n in model.graph.node for o in n.output}
    weighted = [n for n in model.graph.node if n.op_type in ("Conv", "MatMul", "Gemm")]
    scale_name = producer[weighted[layer_index].input[1]].input[1]  # DequantizeLinear(w, scale, zero)
    init = next(i for i in model.graph.initializer if i.name == scale_name)
    init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * np.float32(factor), scale_name))
    onnx.save(model, str(dst))


def _plant_tflite_weight_scale(src, dst, layer_index: int, factor: float) -> None:
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(src.read_bytes()), 0)
    graph = model.subgraphs[0]
    codes = {i: max(c.builtinCode, c.deprecatedBuiltinCode) for i, c in enumerate(model.operatorCodes)}
    weighted = {schema.BuiltinOperator.CONV_2D, schema.BuiltinOperator.FULLY_CONNECTED}
    ops = [op for op in graph.operators if codes[op.opcodeIndex] in weighted]
    q = graph.tensors[ops[layer_index].inputs[1]].quantization
    q.scale = [s * factor for s in q.scale]
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    dst.write_bytes(bytes(builder.Output()))


def _plant_openvino_weight_scale(src, dst, layer_index: int, factor: float) -> None:
    """NNCF's int8 weights are Constant(i8) -> Convert -> Multiply(scale): scale the Multiply's constant."""
    import openvino as ov

    model = ov.Core().read_model(str(src))
    weighted = [op for op in model.get_ordered_ops() if op.get_type_name() in ("Convolution", "MatMul")]
    multiply = weighted[layer_index].input(1).get_source_output().get_node()
    scale = multiply.input(1).get_source_output().get_node()
    bigger = ov.opset13.constant(np.asarray(scale.get_data()) * np.float32(factor))
    multiply.input(1).replace_source_output(bigger.output(0))
    ov.save_model(model, str(dst), compress_to_fp16=False)


def _copy_with_sidecar(path, folder):
    folder.mkdir(exist_ok=True)
    target = folder / path.name
    for part in (path, path.with_suffix(".bin"), path.with_name(path.stem + ".edgekit.json")):
        if part.exists():
            shutil.copyfile(part, folder / part.name)
    return target


@pytest.mark.parametrize("target", ["onnx-int8", "tflite-int8", "onnx-fp32", "openvino-fp32"])
def test_every_layer_is_matched_and_a_clean_file_does_not_diverge(files, test_npz, cnn, target):
    report = _diff(files[target], test_npz, cnn, samples=64)
    assert [r.layer for r in report.layers] == LAYERS and report.coverage == 1.0
    assert report.first_divergent is None and not report.unmatched_artifact_layers
    snr = [r.metrics["snr_db"] for r in report.layers]
    if target.endswith("fp32"):  # the same float arithmetic: exact to float32 rounding
        assert all(s is None or s > 100 for s in snr), snr
        assert all(r.quantization == "float" for r in report.layers)
    else:
        assert all(25 < s < 80 for s in snr), snr  # int8 rounding: visible, far from a fault
        assert all(r.quantization.startswith("w int8 per-channel") for r in report.layers)
    document = report.to_json()
    jsonschema.validate(document, json.loads(SCHEMA_FILE.read_text()))


@pytest.mark.parametrize("target, plant", [("onnx-int8", _plant_onnx_weight_scale),
                                           ("tflite-int8", _plant_tflite_weight_scale),
                                           ("openvino-int8", _plant_openvino_weight_scale)])  # fmt: skip
@pytest.mark.parametrize("layer", [1, 2])
def test_a_weight_scale_off_by_ten_is_the_first_divergent_layer(files, test_npz, cnn, tmp_path, target, plant, layer):
    broken = _copy_with_sidecar(files[target], tmp_path)
    plant(files[target], broken, layer, 10.0)
    # OpenVINO's int8 convolutions keep ~16 dB on this AVX2 CPU: a tolerance below that, far above the fault's
    report = _diff(broken, test_npz, cnn, threshold=12.0 if target.startswith("openvino") else None)
    assert report.first_divergent is not None and report.first_divergent.layer == LAYERS[layer]
    assert report.worst_added is not None and report.worst_added.layer == LAYERS[layer]
    assert all(r.passed for r in report.layers[:layer])  # the layers before it are untouched


def test_an_activation_kernel_that_differs_is_named_at_the_first_layer_it_feeds(files, test_npz, cnn, tmp_path):
    """A runtime whose ReLU kernel leaks (planted: the float file's first Relu made a LeakyRelu) computes the first
    convolution right and feeds the second a different input: the second is where the file diverges."""
    import onnx
    from onnx import helper

    broken = _copy_with_sidecar(files["onnx-fp32"], tmp_path)
    model = onnx.load(str(files["onnx-fp32"]))
    relu = next(n for n in model.graph.node if n.op_type == "Relu")
    relu.op_type = "LeakyRelu"
    relu.attribute.append(helper.make_attribute("alpha", 0.5))
    onnx.save(model, str(broken))
    report = _diff(broken, test_npz, cnn)
    assert report.layers[0].passed and report.first_divergent is not None
    assert report.first_divergent.layer == LAYERS[1] == report.worst_added.layer


def test_an_outlier_channel_that_stretches_an_int8_range_is_named_where_it_stretches_it(
    cnn, calib_npz, test_npz, tmp_path
):
    """One channel of the second convolution's output 400 above the rest (its BatchNorm's shift): that output's
    int8 range leaves the other channels a step or two, which its median channel shows and its SNR hides."""
    import torch

    model = zoo.digits_cnn()
    model.load_state_dict(torch.load(cnn[1]))
    with torch.no_grad():
        model[4].bias[0] += 400.0
    weights = tmp_path / "outlier.pt"
    torch.save(model.state_dict(), weights)
    exported = export(SOURCE, "onnx-int8", tmp_path / "out", calib=calib_npz, weights=weights, inputs=IMAGE)
    report = diff(exported.artifact, test_npz, reference=SOURCE, reference_weights=weights, reference_inputs=IMAGE)
    row = report.first_divergent
    assert row is not None and row.layer == "3", [(r.layer, r.metrics) for r in report.layers]
    assert row.metrics["snr_db"] > 30 > 15 > row.metrics["median_channel_snr_db"]


@pytest.fixture(scope="module")
def programs(tmp_path_factory, cnn, calib_npz):
    """The CNN's ExecuTorch programs (XNNPACK runs each as one delegate call), calibrated on a copy of the data,
    and its PyTorch Mobile files."""
    out = tmp_path_factory.mktemp("diff-pte")
    calib = shutil.copyfile(calib_npz, out / "calib.npz")
    return {
        t: export(SOURCE, t, out, calib=calib, weights=cnn[1], inputs=IMAGE).artifact
        for t in ("executorch-fp32", "executorch-int8", "pytorch-mobile", "pytorch-mobile-int8")
    }


@pytest.mark.parametrize("target", ["pytorch-mobile", "pytorch-mobile-int8"])
def test_a_pytorch_mobile_file_is_read_layer_by_layer_from_its_own_graph(programs, test_npz, cnn, target):
    report = _diff(programs[target], test_npz, cnn, samples=32)
    assert [r.layer for r in report.layers] == LAYERS and report.coverage == 1.0
    assert report.first_divergent is None and report.runtime == "torch-lite"
    snr = [r.metrics["snr_db"] for r in report.layers]
    if target == "pytorch-mobile":
        assert all(s is None or s > 100 for s in snr) and all(r.quantization == "float" for r in report.layers)
    else:
        assert all(25 < s < 80 for s in snr), snr
        assert all(r.quantization.startswith("w int8 per-channel · a uint8") for r in report.layers)


def test_a_weight_off_by_ten_in_a_pytorch_mobile_file_is_the_first_divergent_layer(programs, test_npz, cnn, tmp_path):
    """The fault planted in the file itself (its second convolution's weights times ten, saved again for the lite
    interpreter): the layers are read from the file, not rebuilt."""
    import torch

    broken = _copy_with_sidecar(programs["pytorch-mobile"], tmp_path)
    module = torch.jit.load(str(broken))
    with torch.no_grad():
        getattr(module, "3").weight.mul_(10.0)
    module._save_for_lite_interpreter(str(broken))
    report = _diff(broken, test_npz, cnn)
    assert report.first_divergent is not None and report.first_divergent.layer == "3" == report.worst_added.layer
    assert report.layers[0].passed


@pytest.mark.parametrize("target", ["executorch-fp32", "executorch-int8"])
def test_an_executorch_program_is_read_layer_by_layer_through_its_rebuilt_twin(programs, test_npz, cnn, target):
    """The program is rebuilt from the source with the sidecar's recipe and every layer's tensors as outputs; its
    own outputs equal the file's, which the report says."""
    report = _diff(programs[target], test_npz, cnn, samples=32)
    assert [r.layer for r in report.layers] == LAYERS and report.coverage == 1.0
    assert report.first_divergent is None and report.runtime == "executorch"
    assert any("outputs on these inputs are equal to the file's" in note for note in report.notes), report.notes
    snr = [r.metrics["snr_db"] for r in report.layers]
    if target.endswith("fp32"):
        assert all(s is None or s > 100 for s in snr) and all(r.quantization == "float" for r in report.layers)
    else:  # the convolutions static int8, the linears with int8 activations measured at run time (x86-vnni)
        assert all(25 < s < 80 for s in snr), snr
        words = [r.quantization for r in report.layers]
        assert words[0] == "w int8 per-channel · a int8" and words[-1] == "w int8 per-channel · a int8 dynamic"


@pytest.mark.slow  # 10 s: a second int8 program; the clean ones above stay in the fast suite
def test_an_outlier_in_an_executorch_int8_program_is_named_inside_its_delegate(cnn, calib_npz, test_npz, tmp_path):
    import torch

    model = zoo.digits_cnn()
    model.load_state_dict(torch.load(cnn[1]))
    with torch.no_grad():
        model[4].bias[0] += 400.0  # one channel of the second convolution's output far above the others
    weights = tmp_path / "outlier.pt"
    torch.save(model.state_dict(), weights)
    exported = export(SOURCE, "executorch-int8", tmp_path / "out", calib=calib_npz, weights=weights, inputs=IMAGE)
    report = diff(exported.artifact, test_npz, reference=SOURCE, reference_weights=weights, reference_inputs=IMAGE)
    assert report.first_divergent is not None and report.first_divergent.layer == "3", report.layers
    assert report.layers[0].passed


def test_an_executorch_program_whose_recipe_cannot_be_replayed_is_refused(programs, test_npz, cnn, tmp_path):
    """Its calibration data changed, or it is asked to be the reference: said, never a wrong answer."""
    folder = tmp_path / "moved"
    program = _copy_with_sidecar(programs["executorch-int8"], folder)
    calib = programs["executorch-int8"].parent / "calib.npz"
    original = calib.read_bytes()
    try:
        calib.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
        with pytest.raises(DataError, match="changed since"):
            _diff(program, test_npz, cnn)
    finally:
        calib.write_bytes(original)
    with pytest.raises(UsageError, match="PyTorch source"):
        diff(program, test_npz, reference=programs["executorch-fp32"])


def test_the_cli_names_the_first_divergent_layer_and_exits_1(files, test_npz, cnn, tmp_path, capsys):
    broken = _copy_with_sidecar(files["onnx-int8"], tmp_path)
    _plant_onnx_weight_scale(files["onnx-int8"], broken, 1, 10.0)
    args = ["--data", test_npz, "--reference", SOURCE, "--weights", cnn[1], "--input", zoo.DIGITS_INPUT]
    code, out = run_cli(capsys, "diff", broken, *args, "--json", tmp_path / "d.json")
    assert code == 1 and "first divergent layer: 3 (SNR" in out, out
    document = json.loads((tmp_path / "d.json").read_text())
    assert document["first_divergent"] == "3" and [row["layer"] for row in document["layers"]] == LAYERS
    code, out = run_cli(capsys, "diff", files["onnx-int8"], *args, "--layers", "1*", "--metric", "cosine")
    assert code == 0 and "1 of 1 weighted layers compared" in out, out


def test_reduce_writes_a_piece_of_at_most_five_nodes_that_still_diverges(files, test_npz, cnn, tmp_path, capsys):
    import onnxruntime as ort

    broken = _copy_with_sidecar(files["onnx-int8"], tmp_path / "broken")
    _plant_onnx_weight_scale(files["onnx-int8"], broken, 2, 10.0)
    args = ["--data", test_npz, "--reference", SOURCE, "--weights", cnn[1]]
    code, out = run_cli(capsys, "diff", broken, *args, "--reduce", tmp_path / "piece", "--html", tmp_path / "d.html")
    assert code == 1 and "reduced to 3 nodes" in out, out
    piece = tmp_path / "piece"
    feed, want = dict(np.load(piece / "inputs.npz")), np.load(piece / "expected.npz")
    (name,) = want.files
    got = ort.InferenceSession(str(piece / "reduced.onnx")).run([name], feed)[0].reshape(want[name].shape)
    relative = np.sum((got - want[name]) ** 2) / np.sum(want[name] ** 2)
    assert relative > 10, relative  # the planted 10x scale: the piece alone reproduces it
    assert "`reduced.onnx`" in (piece / "README.md").read_text() and "layer `8`" in (piece / "README.md").read_text()
    page = (tmp_path / "d.html").read_text()
    assert page.count("<tr") == 5 and "First divergent layer: <strong>8</strong>" in page and 'r="6"' in page
    # a clean file has nothing to reduce; a TFLite file cannot be cut into ONNX pieces
    code, out = run_cli(capsys, "diff", files["onnx-int8"], *args, "--reduce", tmp_path / "none")
    assert code == 0 and "nothing diverges: --reduce wrote nothing" in out, out
    assert not (tmp_path / "none").exists()
    tflite = _copy_with_sidecar(files["tflite-int8"], tmp_path / "t")
    _plant_tflite_weight_scale(files["tflite-int8"], tflite, 2, 10.0)
    code, out = run_cli(capsys, "diff", tflite, *args, "--reduce", tmp_path / "t-piece")
    assert code == 2 and "--reduce works on ONNX-based files" in out, out


def test_a_keras_source_is_read_through_its_layers(digits, tmp_path):
    """Keras layers carry their activation (Dense(activation="relu")); TFLite fuses it into the op."""
    x_train, y_train, x_test, y_test = digits
    zoo.keras_digits_cnn(x_train, y_train, epochs=2).save(tmp_path / "cnn.keras")
    np.savez(tmp_path / "calib.npz", image=x_train[:256].transpose(0, 2, 3, 1))
    np.savez(tmp_path / "test.npz", image=x_test.transpose(0, 2, 3, 1), labels=y_test)
    exported = export(tmp_path / "cnn.keras", "tflite-int8", tmp_path / "out", calib=tmp_path / "calib.npz")
    report = diff(exported.artifact, tmp_path / "test.npz", reference=tmp_path / "cnn.keras")
    # Keras numbers its layer names per process (conv2d, conv2d_1, ... after other models): kinds, not names
    assert [r.kind for r in report.layers] == ["Conv2D", "Conv2D", "Dense", "Dense"]
    assert report.coverage == 1.0 and report.first_divergent is None and report.reference_runtime == "tensorflow"
    broken = _copy_with_sidecar(exported.artifact, tmp_path / "broken")
    _plant_tflite_weight_scale(exported.artifact, broken, 2, 10.0)
    first = diff(broken, tmp_path / "test.npz", reference=tmp_path / "cnn.keras").first_divergent
    assert first is not None and first.layer == report.layers[2].layer  # the first Dense


def test_a_keras_source_whose_batch_norms_a_converter_folded_does_not_diverge(mobile_block, tmp_path):
    """tf2onnx folds a batch norm into the convolution before it: that layer is compared with the batch norm
    applied; the swish a Keras layer carries is applied to the ONNX convolution's output."""
    import onnx
    from onnx import numpy_helper

    path, calib = mobile_block
    exported = export(path, "onnx-fp32", tmp_path)
    report = diff(exported.artifact, calib, reference=path, samples=16)
    assert [r.layer for r in report.layers] == ["stem", "dw", "pw", "head"] and report.coverage == 1.0
    assert report.first_divergent is None and all(r.metrics["snr_db"] > 60 for r in report.layers), report.layers
    model = onnx.load(str(exported.artifact))
    depthwise = next(n for n in model.graph.node if any(a.name == "group" and a.i > 1 for a in n.attribute))
    weight = next(i for i in model.graph.initializer if i.name == depthwise.input[1])
    weight.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(weight) * 3, weight.name))
    broken = _copy_with_sidecar(exported.artifact, tmp_path / "broken")
    onnx.save(model, str(broken))
    first = diff(broken, calib, reference=path, samples=16).first_divergent
    assert first is not None and first.layer == "dw"


def test_a_map_with_as_many_channels_as_rows_is_laid_out_by_its_values():
    want = np.random.default_rng(0).normal(size=(2, 4, 4, 4)).astype(np.float32)  # NHWC
    got = np.ascontiguousarray(want.transpose(0, 3, 1, 2))  # NCHW: the same shape, the values elsewhere
    how = best_layout(got, want)
    assert how == ("transpose", (0, 2, 3, 1)) and np.array_equal(lay_out(got, want.shape, how), want)


def test_two_files_compare_layer_by_layer(files, test_npz):
    report = diff(files["tflite-int8"], test_npz, reference=files["onnx-int8"])
    assert report.runtime == "litert" and report.reference_runtime == "onnxruntime"
    assert report.coverage == 1.0 and report.first_divergent is None
    int8_vs_fp32 = diff(files["onnx-int8"], test_npz, reference=files["onnx-fp32"])
    assert int8_vs_fp32.coverage == 1.0 and int8_vs_fp32.first_divergent is None
    assert all(r.weight_cosine > 0.99 for r in int8_vs_fp32.layers)


def test_a_reference_of_another_model_matches_nothing(files, test_npz, mlp):
    with pytest.raises(UsageError, match="they hold different models") as info:
        diff(files["onnx-int8"], test_npz, reference="edgekit_demo.zoo:digits_mlp", reference_weights=mlp[1],
             reference_inputs=IMAGE)  # fmt: skip
    assert info.value.exit_code == 2


def test_data_that_does_not_fit_and_a_runtime_without_intermediates_are_refused(files, cnn, tmp_path):
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, image=np.zeros((4, 1, 6, 6), np.float32))
    with pytest.raises(DataError):
        _diff(files["onnx-int8"], wrong, cnn)
    opaque = tmp_path / "model.ovllm"  # an OpenVINO LLM folder: its pipeline exposes no layer
    opaque.mkdir()
    (opaque / "openvino_model.xml").write_text("not looked at")
    with pytest.raises(UsageError, match="openvino-llm files do not expose") as info:
        diff(opaque, wrong)
    assert "edgekit evaluate" in info.value.hint


def test_layers_that_name_nothing_are_refused_with_the_names(files, test_npz, cnn):
    with pytest.raises(UsageError, match=r"No layer of the reference matches layers= 'conv\*'") as info:
        _diff(files["onnx-int8"], test_npz, cnn, layers="conv*")  # the Python API names the argument
    assert "Its layers: 0, 3, 8, 10" in str(info.value)


def test_a_factory_source_needs_its_weights(files, test_npz):
    with pytest.raises(UsageError, match="pass it with its weights"):
        diff(files["onnx-int8"], test_npz)
