"""Static int8 attention in ONNX Runtime: smoothing the attention's output folds into its value projection, and the
QDQ attention block is rewritten into QAttention + MatMulIntegerToFloat computing exactly what ONNX Runtime
computed from the QDQ graph."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

BATCH, SEQ, HIDDEN, HEADS = 3, 8, 32, 4
OUTLIERS = [5, 21]  # value channels 40x the others: the attention's output carries them


def _weights(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    w = {p: rng.normal(0, 1 / np.sqrt(HIDDEN), (HIDDEN, HIDDEN)).astype(np.float32) for p in "qkvo"}
    w["v"][:, OUTLIERS] *= 40
    w["o"][OUTLIERS] /= 40
    w["bias"] = rng.normal(0, 0.1, 3 * HIDDEN).astype(np.float32)
    w["o_bias"] = rng.normal(0, 0.1, HIDDEN).astype(np.float32)
    return w


def _float_attention(w: dict[str, np.ndarray]):
    """x -> q/k/v MatMuls -> MultiHeadAttention (packed bias, sequence lengths) -> output MatMul + bias."""
    from onnx import TensorProto, helper, numpy_helper

    nodes = [helper.make_node("MatMul", ["x", f"w_{p}"], [p], name=f"proj_{p}") for p in "qkv"]
    nodes += [
        helper.make_node(
            "MultiHeadAttention",
            ["q", "k", "v", "bias", "lengths"],
            ["att"],
            name="mha",
            domain="com.microsoft",
            num_heads=HEADS,
        ),
        helper.make_node("MatMul", ["att", "w_o"], ["o"], name="proj_o"),
        helper.make_node("Add", ["o", "o_bias"], ["y"], name="o_bias_add"),
    ]
    inits = [numpy_helper.from_array(w[p], f"w_{p}") for p in "qkvo"]
    inits += [numpy_helper.from_array(w["bias"], "bias"), numpy_helper.from_array(w["o_bias"], "o_bias")]
    graph = helper.make_graph(
        nodes,
        "attention",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [BATCH, SEQ, HIDDEN]),
            helper.make_tensor_value_info("lengths", TensorProto.INT32, [BATCH]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [BATCH, SEQ, HIDDEN])],
        inits,
        # the types ONNX's shape inference cannot follow through the contrib op (the quantizer needs them)
        value_info=[helper.make_tensor_value_info(t, TensorProto.FLOAT, [BATCH, SEQ, HIDDEN]) for t in ("att", "o")],
    )
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    return helper.make_model(graph, opset_imports=opsets, ir_version=9)


def _feed(seed: int) -> dict[str, np.ndarray]:
    x = np.random.default_rng(seed).normal(size=(BATCH, SEQ, HIDDEN)).astype(np.float32)
    return {"x": x, "lengths": np.array([SEQ, 5, 2], np.int32)}  # right-padded rows


def _run(model, feed: dict[str, np.ndarray]) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feed)[0]


def _quantized(model, tmp_path) -> object:
    """The graph as edgekit's static int8 writes it: ONNX Runtime's QDQ quantizer, per-channel int8 weights, the
    MatMul outputs left float."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    class Reader:
        def __init__(self) -> None:
            self.feeds = iter([_feed(seed) for seed in range(8)])

        def get_next(self):
            return next(self.feeds, None)

    src, dst = tmp_path / "float.onnx", tmp_path / "int8.onnx"
    onnx.save(model, str(src))
    quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"],
                    extra_options={"OpTypesToExcludeOutputQuantization": ["MatMul"]})  # fmt: skip
    return onnx.load(str(dst))


def test_smoothing_the_attention_output_folds_into_the_value_projection_and_is_exact_in_float():
    from edgekit.backends.onnxruntime.smooth import Int8Grid, smooth
    from edgekit.data import Dataset

    w = _weights(0)
    model = _float_attention(w)
    feeds = [_feed(seed) for seed in range(4)]
    data = Dataset({k: np.concatenate([f[k] for f in feeds]) for k in ("x", "lengths")}, None, "test", "")
    notes = smooth(model, data, BATCH, Int8Grid(False, 127))
    assert notes["folded_into_value_projection"] == 1, notes
    # no Mul divides the attention's output: its value projection's columns and bias were divided instead
    assert not [n for n in model.graph.node if n.op_type == "Mul" and n.input[0] == "att"]
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    ratio = w["v"][:, OUTLIERS] / inits["w_v"][:, OUTLIERS]
    assert (ratio > 1).all(), "the outlier value channels are divided down"
    np.testing.assert_allclose(inits["bias"][: 2 * HIDDEN], w["bias"][: 2 * HIDDEN])  # query and key untouched
    feed = _feed(9)
    np.testing.assert_allclose(_run(model, feed), _run(_float_attention(w), feed), rtol=1e-4, atol=1e-4)


def test_the_int8_attention_block_becomes_qattention_and_a_biased_integer_matmul_computing_the_same(tmp_path):
    from edgekit.backends.onnxruntime.int8_encoder import rewrite_int8_encoder

    qdq = _quantized(_float_attention(_weights(1)), tmp_path)
    rewritten = onnx.ModelProto()
    rewritten.CopyFrom(qdq)
    assert rewrite_int8_encoder(rewritten) == {"QAttention": 1, "MatMulIntegerToFloat": 1}
    onnx.checker.check_model(rewritten)
    ops = [n.op_type for n in rewritten.graph.node]
    assert "MultiHeadAttention" not in ops and "MatMul" not in ops and "Add" not in ops, ops
    # the packed weight holds the three projections' int8 values, with a scale per column
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in rewritten.graph.initializer}
    packed = next(v for k, v in inits.items() if k.endswith("_qkv_weight"))
    assert packed.dtype == np.int8 and packed.shape == (HIDDEN, 3 * HIDDEN)
    assert next(v for k, v in inits.items() if k.endswith("_qkv_weight_scale")).shape == (3 * HIDDEN,)
    for seed in (20, 21):  # the same integer products; only the float bias is added in another order
        np.testing.assert_allclose(_run(rewritten, _feed(seed)), _run(qdq, _feed(seed)), rtol=1e-5, atol=1e-6)
    # the work counter follows the new ops (ONNX Runtime's Python shape inference does not know
    # MatMulIntegerToFloat; edgekit's adds it): the same MACs, all of the projections int8
    from edgekit.backends.onnxruntime.work import count

    onnx.save(qdq, str(tmp_path / "qdq.onnx"))
    onnx.save(rewritten, str(tmp_path / "rewritten.onnx"))
    shapes = {"x": [BATCH, SEQ, HIDDEN], "lengths": [BATCH]}
    before, after = count(tmp_path / "qdq.onnx", shapes), count(tmp_path / "rewritten.onnx", shapes)
    assert not after["uncounted_ops"] and after["int8_flops"] == before["int8_flops"] > 0, (before, after)
    assert after["macs_by_op"]["MatMulIntegerToFloat"] == BATCH * SEQ * HIDDEN * HIDDEN


def test_an_attention_reading_a_float_projection_is_left_as_it_is(tmp_path):
    """A projection the fallback kept float has no int8 input to pack: that attention keeps its MatMuls."""
    from edgekit.backends.onnxruntime.int8_encoder import pack_attention

    qdq = _quantized(_float_attention(_weights(2)), tmp_path)
    value = next(n for n in qdq.graph.node if n.op_type == "MatMul" and n.output[0] == "v")
    producer = {o: n for n in qdq.graph.node for o in n.output}
    value.input[1] = producer[value.input[1]].input[0].replace("_quantized", "")  # hypothetical float weight
    qdq.graph.initializer.append(onnx.numpy_helper.from_array(_weights(2)["v"], value.input[1]))
    assert pack_attention(qdq) == 0
    assert [n.op_type for n in qdq.graph.node].count("MultiHeadAttention") == 1


def test_a_weight_scaled_per_input_row_is_not_packed(tmp_path):
    """The integer ops take a scale per output column; a square weight scaled along its rows has as many scales
    and must not pass for one."""
    from edgekit.backends.onnxruntime.int8_encoder import rewrite_int8_encoder

    qdq = _quantized(_float_attention(_weights(3)), tmp_path)
    producer = {o: n for n in qdq.graph.node for o in n.output}
    value = next(n for n in qdq.graph.node if n.op_type == "MatMul" and n.output[0] == "v")
    axis = next(a for a in producer[value.input[1]].attribute if a.name == "axis")
    axis.i = 0
    assert rewrite_int8_encoder(qdq) == {"MatMulIntegerToFloat": 1}  # the output projection only


def test_edgekit_diff_reads_the_layers_of_the_rewritten_ops_with_their_int8_weights(tmp_path):
    """The per-layer taps find the packed projections and the biased MatMul, each weight dequantized with the
    op's own scales as the QDQ file's DequantizeLinear did, and the float tensor each integer op reads."""
    from edgekit.backends.onnxruntime.int8_encoder import rewrite_int8_encoder
    from edgekit.backends.onnxruntime.taps import OnnxTaps

    qdq = _quantized(_float_attention(_weights(4)), tmp_path)
    rewritten = onnx.ModelProto()
    rewritten.CopyFrom(qdq)
    rewrite_int8_encoder(rewritten)
    before = {layer.name: layer for layer in OnnxTaps(qdq).layers}
    after = {layer.name: layer for layer in OnnxTaps(rewritten).layers}
    for part, projection in zip(("query", "key", "value"), ("proj_q", "proj_k", "proj_v"), strict=True):
        np.testing.assert_allclose(after[f"mha_int8/{part}"].weight, before[projection].weight, rtol=1e-6)
        assert after[f"mha_int8/{part}"].tensors[0] == "x"  # the float input its QuantizeLinear reads
    output = after["proj_o_bias"]
    np.testing.assert_allclose(output.weight, before["proj_o"].weight, rtol=1e-6)
    assert output.kind == "MatMulIntegerToFloat" and output.tensors == ("att", "y")
    assert output.quantization == "w int8 per-channel · a int8"
