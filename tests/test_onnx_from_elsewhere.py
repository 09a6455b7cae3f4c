"""ONNX files exported outside edgekit, made ready for onnx2tf: static input dims, shape-only subgraphs folded
(Shape start/end honoured), Erf GELUs fused, constant outputs kept computed; and onnx2tf's errors explained."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgekit.backends.litert.onnx_prep import explain_onnx2tf_failure, prepare_for_onnx2tf
from edgekit.errors import UsageError

SEQ = 64
TEXT_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def _ort(path: Path, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feed)


def _save(path: Path, nodes, inputs, outputs, initializers) -> Path:
    model = helper.make_model(
        helper.make_graph(nodes, "g", inputs, outputs, initializer=initializers),
        opset_imports=[helper.make_opsetid("", 17)],
    )
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def _dims(value_info) -> list:
    return [d.dim_value if d.HasField("dim_value") else d.dim_param for d in value_info.type.tensor_type.shape.dim]


def _constant_outputs(graph) -> list[str]:
    """Outputs that are initializers or Constant outputs: onnx2tf drops, mixes up or rejects those."""
    produced = {o: n.op_type for n in graph.node for o in n.output}
    inits = {t.name for t in graph.initializer}
    return [o.name for o in graph.output if o.name in inits or produced.get(o.name, "Constant") == "Constant"]


def _shape_graph(path: Path) -> Path:
    """x (batch, seq, 8) -> y = x @ W, flattened to (batch * seq, 4) through a dynamo-style Shape(start, end)
    chain; `seq_len` = float(Shape(x, start=1, end=2)): a shape-only output, a constant once dims are fixed."""
    w = np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32)
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["h"]),
        helper.make_node("Shape", ["x"], ["bs"], start=0, end=2),
        helper.make_node("ReduceProd", ["bs"], ["n"], keepdims=1),
        helper.make_node("Concat", ["n", "four"], ["target"], axis=0),
        helper.make_node("Reshape", ["h", "target"], ["y"]),
        helper.make_node("Shape", ["x"], ["s"], start=1, end=2),
        helper.make_node("Cast", ["s"], ["seq_len"], to=TensorProto.FLOAT),
    ]
    return _save(
        path,
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq", 8])],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4]),
            helper.make_tensor_value_info("seq_len", TensorProto.FLOAT, [1]),
        ],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.array([4], np.int64), "four")],
    )


def test_prepare_fixes_dims_folds_shapes_and_keeps_constant_outputs_computed(tmp_path):
    src, out = _shape_graph(tmp_path / "shape.onnx"), tmp_path / "ready.onnx"
    record = prepare_for_onnx2tf(src, {"x": (2, 5, 8)}, out)
    graph = onnx.load(str(out)).graph
    assert _dims(graph.input[0]) == [2, 5, 8]
    assert record["fixed_inputs"] == ["x"] and record["dynamic_tensors"] == []
    assert record["constant_outputs"] == ["seq_len"] and not _constant_outputs(graph)
    assert "Shape" not in {n.op_type for n in graph.node}
    x = np.random.default_rng(1).standard_normal((2, 5, 8)).astype(np.float32)
    (want_y, want_len), (got_y, got_len) = _ort(src, {"x": x}), _ort(out, {"x": x})
    assert got_len.tolist() == want_len.tolist() == [5.0]  # Shape(start=1, end=2): the seq dim, not [2, 5, 8]
    np.testing.assert_array_equal(got_y, want_y)


def test_prepare_fuses_erf_gelu_exactly(tmp_path):
    """x * 0.5 * (1 + erf(x / sqrt 2)) as the torchscript exporter writes it: one Gelu op (TFLite has no Erf)."""
    consts = {"sqrt2": 2**0.5, "one": 1.0, "half": 0.5}
    nodes = [
        helper.make_node("Div", ["x", "sqrt2"], ["d"]),
        helper.make_node("Erf", ["d"], ["e"]),
        helper.make_node("Add", ["e", "one"], ["a"]),
        helper.make_node("Mul", ["x", "a"], ["m"]),
        helper.make_node("Mul", ["m", "half"], ["y"]),
    ]
    src = _save(
        tmp_path / "gelu.onnx",
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 16])],
        [numpy_helper.from_array(np.array(v, np.float32), k) for k, v in consts.items()],
    )
    record = prepare_for_onnx2tf(src, {"x": (3, 16)}, tmp_path / "ready.onnx")
    assert record["fused_gelu"] == 1
    assert [n.op_type for n in onnx.load(str(tmp_path / "ready.onnx")).graph.node] == ["Gelu"]
    x = np.linspace(-4, 4, 48, dtype=np.float32).reshape(3, 16)
    np.testing.assert_allclose(_ort(tmp_path / "ready.onnx", {"x": x})[0], _ort(src, {"x": x})[0], atol=1e-6)


def test_prepare_rejects_a_shape_of_the_wrong_rank(tmp_path):
    with pytest.raises(UsageError, match="rank 3"):
        prepare_for_onnx2tf(_shape_graph(tmp_path / "s.onnx"), {"x": (2, 8)}, tmp_path / "ready.onnx")


def _minilm_onnx(path: Path, dynamo: bool) -> Path:
    """The MiniLM classifier (random 3-class head) as a plain torch.onnx.export writes it, dynamic batch and seq."""
    import torch

    from edgekit.sources.hf_source import transformers_offline
    from edgekit_demo.zoo_text import minilm_dir

    transformers = transformers_offline("The MiniLM test model")
    torch.manual_seed(0)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(str(minilm_dir()), num_labels=3).eval()
    args = (torch.randint(1000, 30000, (1, SEQ)), torch.ones(1, SEQ, dtype=torch.long), torch.zeros(1, SEQ).long())
    axes = {**{n: {0: "batch", 1: "sequence"} for n in TEXT_INPUTS}, "logits": {0: "batch"}}
    kwargs = {"external_data": False} if dynamo else {}
    torch.onnx.export(
        model,
        args,
        str(path),
        input_names=list(TEXT_INPUTS),
        output_names=["logits"],
        opset_version=17,
        dynamic_axes=axes,
        dynamo=dynamo,
        **kwargs,
    )
    return path


@pytest.mark.slow
@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
def test_prepare_minilm_exported_elsewhere(tmp_path, dynamo):
    """The file onnx2tf failed on (bool Expand / Where of unknown rank, then tf.Erf): static, folded, same logits."""
    src, out = _minilm_onnx(tmp_path / "minilm.onnx", dynamo), tmp_path / "ready.onnx"
    record = prepare_for_onnx2tf(src, {n: (1, SEQ) for n in TEXT_INPUTS}, out)
    graph = onnx.load(str(out), load_external_data=False).graph
    assert {i.name: _dims(i) for i in graph.input} == {n: [1, SEQ] for n in TEXT_INPUTS}
    assert record["dynamic_tensors"] == [] and record["folded_nodes"] > 0 and record["fused_gelu"] == 6
    assert not _constant_outputs(graph) and _dims(graph.output[0]) == [1, 3]
    assert not {"Shape", "Erf", "Range", "ConstantOfShape"} & {n.op_type for n in graph.node}
    rng = np.random.default_rng(0)
    mask = np.zeros((1, SEQ), np.int64)
    mask[0, :40] = 1
    feed = {"input_ids": rng.integers(1000, 30000, (1, SEQ)), "attention_mask": mask, "token_type_ids": 0 * mask}
    np.testing.assert_allclose(_ort(out, feed)[0], _ort(src, feed)[0], atol=1e-5)


# What onnx2tf 1.29 raises and logs (ANSI colours and all) on the torchscript MiniLM export without the prep.
EXPAND_ERROR = """Exception encountered when calling layer "tf.math.multiply_603" (type TFOpLambda).

Value passed to parameter 'x' has DataType bool not in list of allowed values: bfloat16, float16, float32, \
float64, uint8, int8, uint16, int16, int32, uint32, uint64, int64, complex64, complex128

Call arguments received by layer "tf.math.multiply_603" (type TFOpLambda):
  \u2022 x=tf.Tensor(shape=(None, None, None, None), dtype=bool)
  \u2022 y=tf.Tensor(shape=(None, None, None, None), dtype=bool)
  \u2022 name=None"""
EXPAND_LOG = """\x1b[31mERROR:\x1b[0m The trace log is below.
Traceback (most recent call last):
  File ".../onnx2tf/ops/Expand.py", line 335, in make_node
    expanded_tensor = input_tensor * ones
TypeError: Exception encountered when calling layer "tf.math.multiply_603" (type TFOpLambda).
\x1b[31mERROR:\x1b[0m input_onnx_file_path: minilm.onnx
\x1b[31mERROR:\x1b[0m onnx_op_name: /bert/Expand
\x1b[31mERROR:\x1b[0m Read this and deal with it. https://github.com/PINTO0309/onnx2tf#parameter-replacement
"""
NOT_A_LAYER = (
    "Output tensors of a Functional model must be the output of a TensorFlow `Layer` (thus holding past layer "
    "metadata). Found: [[0. 0. 0. ... 0. 0. 0.]\n [0. 0. 0. ... 0. 0. 0.]\n [0. 0. 0. ... 0. 0. 0.]]"
)


def _mask_graph(path: Path) -> Path:
    """A graph with the node onnx2tf stopped at (/bert/Expand) and a constant output (`scale`)."""
    nodes = [
        helper.make_node("Expand", ["mask", "target"], ["/bert/Expand_output_0"], name="/bert/Expand"),
        helper.make_node("Constant", [], ["scale"], value=numpy_helper.from_array(np.zeros(3, np.float32))),
    ]
    return _save(
        path,
        nodes,
        [helper.make_tensor_value_info("mask", TensorProto.BOOL, [1, 1, 1, 64])],
        [
            helper.make_tensor_value_info("/bert/Expand_output_0", TensorProto.BOOL, [1, 1, 64, 64]),
            helper.make_tensor_value_info("scale", TensorProto.FLOAT, [3]),
        ],
        [numpy_helper.from_array(np.array([1, 1, 64, 64], np.int64), "target")],
    )


def test_explain_names_the_node_and_drops_value_dumps(tmp_path):
    path = _mask_graph(tmp_path / "m.onnx")
    line = explain_onnx2tf_failure(EXPAND_ERROR, path, EXPAND_LOG)
    assert "\n" not in line and "\x1b" not in line
    assert line.startswith("onnx2tf failed on Expand node '/bert/Expand' (output /bert/Expand_output_0): ")
    assert "DataType bool" in line and "Call arguments" not in line and "tf.math.multiply" not in line

    line = explain_onnx2tf_failure(NOT_A_LAYER, path)
    assert "\n" not in line and "0. 0." not in line and "Found" not in line
    assert "graph output scale is a constant" in line

    shapes = "{{function_node __wrapped__Mul_device_/job:localhost/replica:0/task:0/device:CPU:0}} Incompatible " + (
        "shapes: [1,64] vs. [1,1] [Op:Mul] name: "
    )
    assert explain_onnx2tf_failure(shapes, tmp_path / "missing.onnx", "ERROR: onnx_op_name: node_Mul_7") == (
        "onnx2tf failed on ONNX node 'node_Mul_7': Incompatible shapes: [1,64] vs. [1,1] [Op:Mul] name:"
    )
    dump = "ValueError: Tensor values differ: array([[0.1, 0.2],\n       [0.3, 0.4]], dtype=float32)"
    assert explain_onnx2tf_failure(dump, tmp_path / "missing.onnx") == (
        "onnx2tf failed: ValueError: Tensor values differ: <tensor>"
    )


@pytest.mark.slow
@pytest.mark.parametrize("target", ["tflite-fp32", "openvino-fp32", "tensorrt-fp32"])
@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
def test_an_onnx_file_made_elsewhere_reaches_every_runtime_that_takes_onnx(tmp_path, dynamo, target, capsys):
    """What a user types: the plain torch.onnx.export file, its free axes fixed with --input."""
    from helpers import run_cli

    src = _minilm_onnx(tmp_path / "minilm.onnx", dynamo)
    inputs = [arg for name in TEXT_INPUTS for arg in ("--input", f"{name}:int64:1x{SEQ}")]
    code, out = run_cli(capsys, "export", src, "-t", target, *inputs, "-o", tmp_path / "out")
    assert code == 0 and "parity passed" in out, out


def test_input_specs_must_fit_an_onnx_source(tmp_path, capsys):
    """--input fixes the free dims of an .onnx SOURCE; a name, dtype or fixed dim it does not have is refused."""
    from helpers import run_cli

    src = _shape_graph(tmp_path / "s.onnx")
    code, out = run_cli(
        capsys, "export", src, "-t", "onnx-fp32", "--input", "nothing:float32:1x2", "-o", tmp_path / "a"
    )
    assert code == 2 and "has no input 'nothing'" in out and "x:float32" in out
    code, out = run_cli(capsys, "export", src, "-t", "onnx-fp32", "--input", "x:int64:2x8x4", "-o", tmp_path / "b")
    assert code == 2 and "does not fit s.onnx" in out


def test_a_graph_with_a_shape_only_output_converts_to_tflite(tmp_path, capsys):
    """Dynamic dims fixed from --input, the dynamo-style Shape(start, end) chain folded, the output that became a
    constant (seq_len) kept computed: onnx2tf converts it and the file matches its source on both outputs."""
    from helpers import run_cli

    src = _shape_graph(tmp_path / "s.onnx")
    code, out = run_cli(capsys, "export", src, "-t", "tflite-fp32", "--input", "x:float32:1x5x8", "-o", tmp_path / "o")
    assert code == 0 and "parity passed" in out, out
    assert "parity y: max abs 0," in out and "parity seq_len: max abs 0," in out
    import json

    record = json.loads((tmp_path / "o" / "s-tflite-fp32.edgekit.json").read_text())["route"][0]["onnx_prep"]
    assert record["constant_outputs"] == ["seq_len"] and record["fixed_inputs"] == ["x"]


def _tf2onnx_cnn(path: Path) -> Path:
    """A small channels-last RGB CNN as a user converts it with tf2onnx outside edgekit (free batch axis)."""
    import keras
    import tensorflow as tf
    import tf2onnx

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            keras.layers.Conv2D(8, 3, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(10),
        ]
    )
    fn = tf.function(lambda x: model(x, training=False))
    spec = (tf.TensorSpec([None, 32, 32, 3], tf.float32, name="image"),)
    tf2onnx.convert.from_function(fn, input_signature=spec, opset=17, output_path=str(path))
    return path


@pytest.fixture
def offline(monkeypatch):
    """Name lookups and connections beyond loopback fail loudly instead of timing out (or, with a network,
    succeeding); the check itself resolves nothing."""
    import ipaddress
    import socket

    def is_loopback(host) -> bool:
        try:
            return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
        except ValueError:
            return host == "localhost"

    connect, getaddrinfo = socket.socket.connect, socket.getaddrinfo

    def connect_loopback_only(self, address):
        if isinstance(address, tuple) and not is_loopback(address[0]):
            raise AssertionError(f"a connection to {address} left this machine")
        return connect(self, address)

    def resolve_loopback_only(host, *args, **kwargs):
        if host is not None and not is_loopback(host):
            raise AssertionError(f"a name lookup of {host} left this machine")
        return getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect_loopback_only)
    monkeypatch.setattr(socket, "getaddrinfo", resolve_loopback_only)


@pytest.mark.parametrize(
    "target",
    [
        "tflite-fp32",
        pytest.param("openvino-fp32", marks=pytest.mark.slow),
        pytest.param("tensorrt-fp32", marks=pytest.mark.slow),
    ],
)
def test_a_tf2onnx_file_reaches_every_runtime_that_takes_onnx(tmp_path, target, capsys, offline):
    """onnx2tf fetches sample images from github.com for channels-last RGB inputs; edgekit gives it generated
    ones, so the conversion works offline and nothing leaves the machine."""
    from helpers import run_cli

    src = _tf2onnx_cnn(tmp_path / "cnn.onnx")
    code, out = run_cli(capsys, "export", src, "-t", target, "--input", "image:float32:1x32x32x3", "-o", tmp_path / "o")
    assert code == 0 and "parity passed" in out, out
