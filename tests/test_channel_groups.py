"""Channel groups for PyTorch Mobile's per-layer static int8 (edgekit/backends/torch_mobile/groups.py): the
grouping rule, the split Linear computing what the Linear computed, and the int8 error it removes."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.backends.torch_mobile.groups import channel_ranges, grouped_linear_class
from edgekit.channel_groups import grouping, range_groups

torch = pytest.importorskip("torch")


def test_outlier_channels_get_a_group_of_their_own():
    ranges = np.ones(64)
    ranges[[5, 40]] = 100.0
    groups = range_groups(ranges)
    assert [sorted(g.tolist()) for g in groups] == [[5, 40], [c for c in range(64) if c not in (5, 40)]]


def test_channels_of_like_range_stay_one_group():
    ranges = np.random.default_rng(0).uniform(0.5, 1.0, 128)  # splitting would gain at most 4x: not taken
    assert [g.tolist() for g in range_groups(ranges)] == [list(range(128))]


def test_three_tiers_of_range_make_three_groups():
    ranges = np.concatenate([np.full(4, 300.0), np.full(16, 20.0), np.ones(200)])
    assert sorted(len(g) for g in range_groups(ranges)) == [4, 16, 200]
    assert sorted(np.concatenate(range_groups(ranges)).tolist()) == list(range(220))  # each channel once


def _outlier_layer_and_inputs():
    """A Linear whose input has two channels 100x the rest, and whose output has two channels 100x the rest."""
    torch.manual_seed(0)
    layer = torch.nn.Linear(48, 32)
    with torch.no_grad():
        layer.weight[[3, 17]] *= 100.0
    x = torch.randn(256, 48)
    x[:, [7, 30]] *= 100.0
    return layer.eval(), x


def test_a_grouped_linear_computes_what_the_linear_computed():
    layer, x = _outlier_layer_and_inputs()
    (inputs, outputs) = grouping(channel_ranges(torch.nn.Sequential(layer), ["0"], lambda: layer(x)))["0"]
    assert len(inputs) > 1 and len(outputs) > 1
    grouped = grouped_linear_class()(layer, inputs, outputs).eval()
    with torch.no_grad():
        torch.testing.assert_close(grouped(x), layer(x), rtol=1e-5, atol=1e-3)


def _int8_error(module, layer, x) -> float:
    """The median output channel's error of `module` quantized (eager mode, calibrated on x), relative to that
    channel's spread: the channels of ordinary range are where one int8 scale loses."""
    from torch.ao.quantization import convert, get_default_qconfig, prepare

    torch.backends.quantized.engine = "x86"
    module.qconfig = get_default_qconfig("x86")
    prepare(module, inplace=True)
    with torch.no_grad():
        module(x)
    convert(module, inplace=True)
    with torch.no_grad():
        want, got = layer(x), module(x)
    return float(((got - want).abs().mean(0) / want.std(0)).median())


def test_groups_cut_the_int8_error_of_channels_of_ordinary_range():
    from torch.ao.quantization import QuantWrapper

    layer, x = _outlier_layer_and_inputs()
    groups = grouping(channel_ranges(torch.nn.Sequential(layer), ["0"], lambda: layer(x)))["0"]
    import copy

    one_scale = _int8_error(QuantWrapper(copy.deepcopy(layer)), layer, x)
    grouped = _int8_error(grouped_linear_class()(layer, *groups), layer, x)
    assert grouped < one_scale / 10, (grouped, one_scale)
    assert grouped < 0.05


def _onnx_layer_with_outliers():
    """An ONNX graph x -> MatMul(W) + b -> y whose input and output each have two channels 100x the rest, and
    a calibration set for it."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    layer, x = _outlier_layer_and_inputs()
    weight = layer.weight.detach().numpy().T.copy()  # MatMul's [in, out]
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w"], ["mm"], name="fc_matmul"),
            helper.make_node("Add", ["mm", "b"], ["y"], name="fc_bias"),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 8, 48])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 8, 32])],
        [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(layer.bias.detach().numpy(), "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model, x.numpy().reshape(32, 8, 48), weight


def test_the_onnx_rewrite_splits_a_layer_into_its_groups_and_computes_the_same(tmp_path):
    """TFLite's ONNX route: the layer becomes one MatMul per input group x output group, gathered, summed,
    concatenated and put back in order; in float it computes what the layer computed, and each part's weight
    is known by its fingerprint (the fallback keeps a split layer float by those)."""
    import onnxruntime as ort
    from onnx import numpy_helper

    from edgekit.backends.litert.onnx_groups import split_channel_groups
    from edgekit.backends.litert.tflite_file import fingerprint
    from edgekit.data import Dataset

    model, x, weight = _onnx_layer_with_outliers()
    before = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    notes, parts = split_channel_groups(model, Dataset({"x": x}, None, "t", "0"), 8)
    (counts,) = notes["layers"].values()
    assert counts["input"] >= 2 and counts["output"] >= 2, notes
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("MatMul") == counts["input"] * counts["output"] and "Concat" in ops
    assert "w" not in {i.name for i in model.graph.initializer}  # the whole weight is gone, its parts remain
    part_weights = [numpy_helper.to_array(i) for i in model.graph.initializer if i.name.endswith("_w")]
    assert sorted(parts[fingerprint(weight)]) == sorted(fingerprint(w) for w in part_weights)
    assert sum(w.size for w in part_weights) == weight.size
    after = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    np.testing.assert_allclose(after[0], before[0], rtol=1e-4, atol=1e-2)


def test_layers_of_like_channels_are_left_whole():
    from onnx import numpy_helper

    from edgekit.backends.litert.onnx_groups import split_channel_groups
    from edgekit.data import Dataset

    model, _, _ = _onnx_layer_with_outliers()
    plain = np.random.default_rng(0).standard_normal((16, 8, 48)).astype(np.float32)
    model.graph.initializer[0].CopyFrom(numpy_helper.from_array(np.full((48, 32), 0.05, np.float32), "w"))
    notes, parts = split_channel_groups(model, Dataset({"x": plain}, None, "t", "1"), 8)
    assert notes["layers"] == {} and parts == {}
    assert [n.op_type for n in model.graph.node] == ["MatMul", "Add"]
