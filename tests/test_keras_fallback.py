"""The per-layer fallback on Keras sources: sensitivity measured on the Keras model, and the layers it names kept
float in each runtime's file although the converters fold batch norms into the weights and rename the ops
(tf2onnx `Conv__12`, OpenVINO `Transpose_2922`): ONNX Runtime, TFLite and OpenVINO find them by scope or position."""

from __future__ import annotations

import numpy as np
import onnx

from edgekit.backends.litert.tflite_file import read_tflite
from edgekit.data import read_data
from edgekit.exporter import export
from edgekit.fallback import FallbackOptions
from edgekit.sensitivity import keras_scoped, measure, quantizable_layers
from edgekit.sources import load

LAYERS = ["stem", "dw", "pw", "head"]


def test_keras_layers_are_named_and_measured_and_an_outlier_layer_ranks_first(mobile_block, tmp_path):
    import keras

    path, calib = mobile_block
    model = keras.saving.load_model(path)
    kernel = model.get_layer("pw").kernel
    planted = kernel.numpy()
    planted[0, 0, 0, 0] = 200 * np.abs(planted).max()  # one weight stretches its channel's int8 grid
    kernel.assign(planted)
    model.save(tmp_path / "planted.keras")

    source, trained = load(tmp_path / "planted.keras"), load(path)
    assert quantizable_layers(source) == LAYERS
    data = read_data(calib, source.signature)
    table, before = measure(source, data), {s.layer: s.error for s in measure(trained, data)}
    assert table[0].layer == "pw" and {s.layer for s in table} == set(LAYERS)
    assert table[0].error > 2 * table[1].error and table[0].error > 3 * before["pw"]
    assert all(s.error > 0 for s in table) and {s.kind for s in table} == {"Conv2D", "DepthwiseConv2D", "Dense"}


def test_converted_names_map_back_to_keras_layers():
    layers = ("block_1_expand", "block_1", "dw")
    assert keras_scoped("mobilenetv2_1/block_1_expand_1/convolution/merged_input:0", layers) == "block_1_expand"
    assert keras_scoped("model/block_1_expand_relu_1/Relu6", layers) is None  # another layer's scope
    # TFLite joins the names of the ops it fused
    assert keras_scoped("m/dw_bn_1/batchnorm/add_1;m/dw_1/depthwise;m/dw_bn_1/batchnorm/mul", layers) == "dw"
    assert keras_scoped("Conv__339", layers) is None


def _kept_dw(result):
    record = result.sidecar["quantization"]["fallback"]
    assert record["pinned"] == ["dw"] and result.parity.passed
    return result.sidecar["quantization"]


def test_keep_float_of_a_keras_layer_reaches_onnx_runtime(mobile_block, tmp_path):
    path, calib = mobile_block
    result = export(path, "onnx-int8", tmp_path, calib=calib, fallback=FallbackOptions(keep_float=("dw",)))
    _kept_dw(result)
    graph = onnx.load(str(result.artifact)).graph
    produced_by = {o: n for n in graph.node for o in n.output}
    convs = [n for n in graph.node if n.op_type == "Conv"]
    quantized = {n.name for n in convs if produced_by.get(n.input[1]) is not None}  # weight from DequantizeLinear
    float_convs = [n for n in convs if n.name not in quantized]
    # the depthwise one (tf2onnx folded its batch norm and named it anew: found by its place)
    assert [next(a.i for a in n.attribute if a.name == "group") for n in float_convs] == [16], float_convs
    assert len(quantized) == 2  # the stem and the pointwise convolution stay int8


def test_keep_float_of_a_keras_layer_reaches_tflite(mobile_block, tmp_path):
    path, calib = mobile_block
    result = export(path, "tflite-int8", tmp_path, calib=calib, fallback=FallbackOptions(keep_float=("dw",)))
    _kept_dw(result)
    ops = read_tflite(result.artifact).ops
    float_convs = [o for o in ops if o.op in ("CONV_2D", "DEPTHWISE_CONV_2D") and o.computes_in_float]
    assert [o.op for o in float_convs] == ["DEPTHWISE_CONV_2D"]
    assert [o.op for o in ops if o.op == "CONV_2D" and not o.computes_in_float] == ["CONV_2D", "CONV_2D"]


def test_keep_float_of_a_keras_layer_reaches_openvino(mobile_block, tmp_path):
    import openvino as ov

    path, calib = mobile_block
    result = export(path, "openvino-int8", tmp_path, calib=calib, fallback=FallbackOptions(keep_float=("dw",)))
    kept = _kept_dw(result)["kept_float_ops"]
    assert len(kept) == 1  # the depthwise convolution, found by its place among the source's convolutions
    ir = ov.Core().read_model(str(result.artifact))
    (op,) = [o for o in ir.get_ops() if o.get_friendly_name() == kept[0]]
    assert op.get_type_name() == "GroupConvolution"
    quantized = [o for o in ir.get_ops() if o.get_type_name() == "Convolution"]
    assert quantized and all(o.input_value(1).get_node().get_type_name() != "Constant" for o in quantized)
