"""SkipLayerNormalization written back as Add + LayerNormalization: the same values, and a graph ONNX Runtime's
session does not fuse into the slow node again."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

HIDDEN = 16


def _model(opset: int = 17, with_sum: bool = False):
    """x + skip + bias, layer-normalized, as ONNX Runtime's transformer optimizer writes it (the sum as an
    output of its own with `with_sum`)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.normal(1, 0.1, HIDDEN).astype(np.float32), "gamma"),
        numpy_helper.from_array(rng.normal(0, 0.1, HIDDEN).astype(np.float32), "beta"),
        numpy_helper.from_array(rng.normal(0, 0.5, HIDDEN).astype(np.float32), "bias"),
    ]
    outputs = ["y", "", "", "total"] if with_sum else ["y"]
    node = helper.make_node(
        "SkipLayerNormalization", ["x", "skip", "gamma", "beta", "bias"], outputs, domain="com.microsoft", epsilon=1e-5
    )
    value = lambda name: helper.make_tensor_value_info(name, TensorProto.FLOAT, [2, 5, HIDDEN])
    graph = helper.make_graph(
        [node], "g", [value("x"), value("skip")], [value("y"), *([value("total")] if with_sum else [])], inits
    )
    opsets = [helper.make_opsetid("", opset), helper.make_opsetid("com.microsoft", 1)]
    return helper.make_model(graph, opset_imports=opsets)


def _run(model, tmp_path) -> tuple[list[np.ndarray], Counter]:
    """The outputs on a fixed feed, and the op types of the graph ONNX Runtime's session runs."""
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "session.onnx")
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    # an outlier channel, as BERT's residual stream has
    feed = {name: rng.normal(0, 1, (2, 5, HIDDEN)).astype(np.float32) for name in ("x", "skip")}
    feed["x"][..., 3] *= 50
    ran = Counter(n.op_type for n in onnx.load(options.optimized_model_filepath).graph.node)
    return session.run(None, feed), ran


@pytest.mark.parametrize("with_sum", [False, True])
def test_the_rewrite_computes_the_same_and_stays_unfused_in_the_session(with_sum, tmp_path):
    from edgekit.backends.onnxruntime.layernorm import unfuse_skip_layernorm

    fused = _model(with_sum=with_sum)
    before, ran_before = _run(fused, tmp_path)
    rewritten = _model(with_sum=with_sum)
    assert unfuse_skip_layernorm(rewritten) == 1
    onnx.checker.check_model(rewritten)
    after, ran_after = _run(rewritten, tmp_path)
    assert ran_before["SkipLayerNormalization"] == 1
    assert "SkipLayerNormalization" not in ran_after and ran_after["LayerNormalization"] == 1
    assert len(after) == len(before)
    for a, b in zip(after, before, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_below_opset_17_the_fused_node_stays():
    from edgekit.backends.onnxruntime.layernorm import unfuse_skip_layernorm

    model = _model(opset=16)
    assert unfuse_skip_layernorm(model) == 0
    assert [n.op_type for n in model.graph.node] == ["SkipLayerNormalization"]
