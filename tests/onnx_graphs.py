"""Small ONNX graphs built with onnx.helper (no framework needed): a linear classifier with named outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def linear_classifier(
    path: Path, scores: str = "scores", features: str = "features", scores_first: bool = True, noise: float = 0.0
) -> Path:
    """x (batch, 8) -> features = x @ W1 (batch, 16); scores = features @ W2 (batch, 4). The outputs are named
    and ordered as asked; `noise` perturbs W2 to make a file that disagrees with the unperturbed one."""
    rng = np.random.default_rng(0)
    w1 = rng.standard_normal((8, 16)).astype(np.float32)
    w2 = (rng.standard_normal((16, 4)) + noise * rng.standard_normal((16, 4))).astype(np.float32)
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], [features]),
        helper.make_node("MatMul", [features, "w2"], [scores]),
    ]
    outs = [
        helper.make_tensor_value_info(scores, TensorProto.FLOAT, ["batch", 4]),
        helper.make_tensor_value_info(features, TensorProto.FLOAT, ["batch", 16]),
    ]
    graph = helper.make_graph(
        nodes,
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])],
        outs if scores_first else outs[::-1],
        initializer=[numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def inputs_npz(path: Path, n: int = 64, seed: int = 0) -> Path:
    np.savez(path, x=np.random.default_rng(seed).standard_normal((n, 8)).astype(np.float32))
    return path
