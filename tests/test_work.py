"""The benchmark's arithmetic work: exact MAC counts on graphs small enough to count by hand, int8 told from
float, and the efficiency against a peak."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgekit.backends.onnxruntime.work import count
from edgekit.bench.peak import efficiency


def _save(tmp_path, name, nodes, inputs, outputs, weights=(), opsets=(("", 17),)):
    graph = helper.make_graph(nodes, name, inputs, outputs, [numpy_helper.from_array(w, n) for n, w in weights])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets])
    path = tmp_path / f"{name}.onnx"
    onnx.save(model, str(path))
    return path


def _f(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def test_gemm_with_transposed_weight(tmp_path):
    w = np.zeros((16, 8), np.float32)  # transB: 8 in, 16 out
    path = _save(tmp_path, "gemm", [helper.make_node("Gemm", ["x", "w"], ["y"], transB=1)], [_f("x", ["n", 8])],
                 [_f("y", ["n", 16])], [("w", w)])  # fmt: skip
    work = count(path, {"x": [4, 8]})
    assert work["macs"] == 4 * 8 * 16 and work["flops"] == 2 * 512 and work["float_flops"] == 1024
    assert work["macs_by_op"] == {"Gemm": 512} and work["int8_flops"] == 0


def test_conv_counts_every_output_element_times_its_kernel(tmp_path):
    w = np.zeros((16, 3, 3, 3), np.float32)
    conv = helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])
    grouped = helper.make_node("Conv", ["y", "g"], ["z"], group=4)  # 16 -> 8 channels in 4 groups, 1x1
    g = np.zeros((8, 4, 1, 1), np.float32)
    path = _save(tmp_path, "conv", [conv, grouped], [_f("x", [1, 3, 8, 8])], [_f("z", None)], [("w", w), ("g", g)])
    work = count(path, {"x": [2, 3, 8, 8]})
    assert work["macs_by_op"]["Conv"] == 2 * 16 * 8 * 8 * (3 * 3 * 3) + 2 * 8 * 8 * 8 * (4 * 1 * 1)


def test_attention_block_projections_scores_and_context(tmp_path):
    """Q/K/V projections of [1, 10, 32] by 32x32, 4 heads of 8: scores [4, 10, 8]x[4, 8, 10] and context."""
    nodes, weights = [], []
    for name in ("q", "k", "v"):
        weights.append((f"w{name}", np.zeros((32, 32), np.float32)))
        nodes.append(helper.make_node("MatMul", ["x", f"w{name}"], [f"{name}_flat"]))
        shape = np.array([1, 10, 4, 8], np.int64)
        weights.append((f"s{name}", shape))
        nodes.append(helper.make_node("Reshape", [f"{name}_flat", f"s{name}"], [f"{name}_4d"]))
    nodes.append(helper.make_node("Transpose", ["q_4d"], ["qh"], perm=[0, 2, 1, 3]))
    nodes.append(helper.make_node("Transpose", ["k_4d"], ["kt"], perm=[0, 2, 3, 1]))
    nodes.append(helper.make_node("Transpose", ["v_4d"], ["vh"], perm=[0, 2, 1, 3]))
    nodes.append(helper.make_node("MatMul", ["qh", "kt"], ["scores"]))
    nodes.append(helper.make_node("Softmax", ["scores"], ["p"], axis=-1))
    nodes.append(helper.make_node("MatMul", ["p", "vh"], ["context"]))
    path = _save(tmp_path, "attention", nodes, [_f("x", [1, 10, 32])], [_f("context", None)], weights)
    work = count(path, {"x": [1, 10, 32]})
    projections, scores, context = 3 * 10 * 32 * 32, 4 * 10 * 8 * 10, 4 * 10 * 10 * 8
    assert work["macs"] == projections + scores + context == 37120


def test_qdq_and_integer_ops_count_as_int8(tmp_path):
    zero = np.zeros((), np.int8)
    scale = np.ones((), np.float32)
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"]),
        helper.make_node("DequantizeLinear", ["wq", "s", "z"], ["wd"]),
        helper.make_node("MatMul", ["xd", "wd"], ["y"]),  # QDQ: ONNX Runtime runs it in int8
        helper.make_node("MatMul", ["y", "w2"], ["z2"]),  # plain float
    ]
    weights = [("s", scale), ("z", zero), ("wq", np.zeros((8, 8), np.int8)), ("w2", np.zeros((8, 4), np.float32))]
    path = _save(tmp_path, "qdq", nodes, [_f("x", ["n", 8])], [_f("z2", None)], weights)
    work = count(path, {"x": [2, 8]})
    assert work["int8_flops"] == 2 * (2 * 8 * 8) and work["float_flops"] == 2 * (2 * 8 * 4)


def test_efficiency_is_ideal_time_over_measured_time():
    work = {"flops": 3e9, "int8_flops": 2e9, "float_flops": 1e9}
    peak = {"int8": 1000.0, "fp32": 250.0}  # GFLOP/s
    ideal = 2e9 / 1e12 + 1e9 / 250e9  # 2 ms + 4 ms
    assert efficiency(work, 0.012, peak) == pytest.approx(ideal / 0.012) == pytest.approx(0.5)
    assert efficiency({"flops": 0}, 0.01, peak) is None


def test_free_sequence_dims_run_at_the_asked_length_and_are_counted_there(tmp_path):
    """--seq-len: a text model benchmarked at its real (unpadded) length, its work counted at that length."""
    from edgekit.bench.harness import Settings, benchmark

    w = np.ones((8, 4), np.float32)
    path = _save(tmp_path, "seq", [helper.make_node("MatMul", ["x", "w"], ["y"])], [_f("x", ["batch", "seq", 8])],
                 [_f("y", ["batch", "seq", 4])], [("w", w)])  # fmt: skip
    runs, error = benchmark([path], "local", Settings(min_runs=5, min_time=0.01, processes=1, seq_len=24))
    assert error is None and runs[0]["inputs"] == {"x": [1, 24, 8]}
    assert runs[0]["work"]["macs"] == 24 * 8 * 4


def test_fused_attention_and_what_follows_it_are_counted(tmp_path):
    """ONNX Runtime's fused Attention (com.microsoft): QKV projection, scores and context; then a MatMul on
    its output, whose shape only the Attention's own shapes give."""
    attention = helper.make_node(
        "Attention", ["x", "w", "b"], ["a"], domain="com.microsoft", num_heads=4, name="attention_0"
    )
    after = helper.make_node("MatMul", ["a", "w2"], ["y"])
    weights = [("w", np.zeros((32, 96), np.float32)), ("b", np.zeros(96, np.float32)),
               ("w2", np.zeros((32, 16), np.float32))]  # fmt: skip
    path = _save(tmp_path, "fused", [attention, after], [_f("x", ["batch", "seq", 32])], [_f("y", None)], weights,
                 opsets=(("", 17), ("com.microsoft", 1)))  # fmt: skip
    work = count(path, {"x": [1, 10, 32]})
    projection, attend = 10 * 32 * 96, 2 * 4 * 10 * 10 * 8
    assert work["macs_by_op"] == {"Attention": projection + attend, "MatMul": 10 * 32 * 16}
    assert not work["uncounted_ops"]


def test_symbolic_shape_inference_leaves_nothing_in_the_working_folder(tmp_path, monkeypatch):
    """ONNX Runtime's `infer_shapes` saves a half-typed model into the current directory when it gives up; edgekit
    runs the inference without that save (fusion and work counting fall back to other shape sources)."""
    from edgekit.backends.onnxruntime.shapes import symbolic_shapes

    graph = helper.make_graph(
        [helper.make_node("Opaque", ["x"], ["y"], domain="custom.x"), helper.make_node("Relu", ["y"], ["z"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("custom.x", 1)])
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="incomplete"):
        symbolic_shapes(model, guess_output_rank=False)  # an op it does not know, whose rank it may not guess
    assert list(tmp_path.iterdir()) == []
    assert Path.cwd() == tmp_path


# the digits CNN at batch 1: conv 1->16 (3x3 on 8x8), conv 16->32 (3x3 on 8x8), linear 512->64, linear 64->10
DIGITS_CNN_MACS = 16 * 8 * 8 * 9 + 32 * 8 * 8 * 16 * 9 + 512 * 64 + 64 * 10


@pytest.fixture(scope="module")
def cnn_files(cnn, calib_npz, tmp_path_factory):
    from edgekit.exporter import export
    from edgekit_demo import zoo

    out = tmp_path_factory.mktemp("work")
    targets = ("onnx-fp32", "onnx-int8", "openvino-fp32", "openvino-int8", "openvino-int8-weights", "tflite-fp32",
               "tflite-dynamic", "tflite-int8")  # fmt: skip
    return {
        t: export(
            "edgekit_demo.zoo:digits_cnn", t, out, weights=cnn[1], calib=calib_npz, inputs=[zoo.DIGITS_INPUT]
        ).artifact
        for t in targets
    }


@pytest.mark.parametrize(
    ("target", "int8_macs"),
    [
        ("onnx-fp32", 0),
        ("onnx-int8", DIGITS_CNN_MACS),
        ("openvino-fp32", 0),
        ("openvino-int8", DIGITS_CNN_MACS),
        ("openvino-int8-weights", 0),
        ("tflite-fp32", 0),
        # litert-torch's file, made int8 by ai-edge-quantizer: every weighted layer, the small ones too (the TFLite
        # converter's dynamic range left the first conv and the last linear, under 1,024 weights each, float)
        ("tflite-dynamic", DIGITS_CNN_MACS),
        ("tflite-int8", DIGITS_CNN_MACS),
    ],
)
def test_every_counting_backend_finds_the_same_work(cnn_files, target, int8_macs):
    """ONNX, OpenVINO IR and .tflite files of one CNN: the same MACs, counted by hand; int8 files count the
    layers their runtime runs in int8, weight-only and float files none."""
    from edgekit.backends.registry import backend_for_file

    path = cnn_files[target]
    work = backend_for_file(path).count_work(path, {"image": [1, 1, 8, 8]})
    assert work["macs"] == DIGITS_CNN_MACS and work["uncounted_ops"] == {}, work
    assert work["int8_flops"] == 2 * int8_macs, work
