"""The arithmetic work of an ONNX file at the benchmarked input shapes (edgekit.backends.work's document).

Counted: MatMul/Gemm/Conv/ConvTranspose and their integer and QDQ forms, and the fused Attention ops
(QKV projection, scores, context). Element-wise ops, softmax and normalization are memory-bound and left
out: on a transformer they are a few percent of the MACs. FLOPs = 2 x MACs.
"""

from __future__ import annotations

from collections import Counter
from math import prod
from pathlib import Path
from typing import Any

from edgekit.backends.work import tally

_MATMULS = ("MatMul", "MatMulInteger", "QLinearMatMul", "DynamicQuantizeMatMul", "MatMulIntegerToFloat")
_INT8 = {"MatMulInteger", "QLinearMatMul", "ConvInteger", "QLinearConv", "QGemm", "QAttention", "DynamicQuantizeMatMul",
         "MatMulIntegerToFloat"}  # fmt: skip


def _shapes(model, inputs: dict[str, list[int]]) -> dict[str, list[int]]:
    """Every tensor's concrete shape with the inputs fixed: ONNX Runtime's symbolic shape inference (it
    follows the Shape/Reshape arithmetic of exported transformers and knows the contrib ops), else ONNX's."""
    import onnx
    from onnx import numpy_helper

    from edgekit.backends.onnxruntime.shapes import symbolic_shapes

    graph = model.graph
    for value in graph.input:
        if value.name in inputs:
            dims = value.type.tensor_type.shape.dim
            for dim, size in zip(dims, inputs[value.name]):
                dim.ClearField("dim_param")
                dim.dim_value = int(size)
    try:
        inferred = symbolic_shapes(model)
    except Exception:
        inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    shapes: dict[str, list[int]] = {i.name: list(numpy_helper.to_array(i).shape) for i in graph.initializer}
    dims = {
        v.name: [d.dim_value if d.HasField("dim_value") else d.dim_param for d in v.type.tensor_type.shape.dim]
        for v in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]
    }
    # the shape inference leaves a fused Attention's output symbolic ("QAttention_20_o0__d0"), and every shape
    # after it: resolve those symbols from the node's input and weight, in graph order
    symbols: dict[str, int] = {}
    concrete = lambda name: [d if isinstance(d, int) else symbols.get(d) for d in dims.get(name, [None])]
    for node in inferred.graph.node:
        if node.op_type in ("Attention", "QAttention") and node.output and node.output[0] in dims:
            source, weight = concrete(node.input[0]), shapes.get(node.input[1])
            if None not in source and weight and len(source) == 3:
                for dim, length in zip(dims[node.output[0]], [source[0], source[1], weight[1] // 3]):
                    if isinstance(dim, str) and isinstance(length, int):
                        symbols[dim] = length
    for name in dims:
        known = concrete(name)
        if all(isinstance(d, int) for d in known):
            shapes[name] = [int(d) for d in known if d is not None]
    return shapes


def _attr(node, name: str, default: Any) -> Any:
    from onnx import helper

    return next((helper.get_attribute_value(a) for a in node.attribute if a.name == name), default)


def node_macs(node, shapes: dict[str, list[int]], dequantized: set[str]) -> list[tuple[int, bool]] | None:
    """[(MACs, runs in int8), ...] of one node's parts, or None when it does no counted work or its shapes
    are unknown."""
    op = node.op_type
    a = shapes.get(node.input[0]) if node.input else None
    b = shapes.get(node.input[1]) if len(node.input) > 1 else None
    if op in ("QLinearMatMul", "QLinearConv"):  # (a, a_scale, a_zero, b, ...)
        b = shapes.get(node.input[3])
    int8 = op in _INT8 or (len(node.input) > 1 and node.input[0] in dequantized and node.input[1] in dequantized)
    if a is None:
        return None
    if op in _MATMULS and b is not None:
        k = a[-1]
        n = b[-1] if len(b) > 1 else 1
        rows = a[-2] if len(a) > 1 else 1
        batch = prod(a[:-1]) if len(b) <= 2 else prod(max(x, y) for x, y in zip(a[:-2], b[:-2])) * rows
        return [(batch * k * n, int8)]
    if op in ("Gemm", "QGemm") and b is not None:
        m, k = (a[1], a[0]) if _attr(node, "transA", 0) else (a[0], a[1])
        n = b[0] if _attr(node, "transB", 0) else b[1]
        return [(m * k * n, int8)]
    if op in ("Conv", "ConvInteger", "QLinearConv") and b is not None:
        out = shapes.get(node.output[0])
        if out is None:
            return None
        # every output element takes (Cin / groups) x kernel MACs; the weight holds Cout x Cin/groups x kernel
        return [(prod(out) * prod(b[1:]), int8)]
    if op == "ConvTranspose" and b is not None:
        # every input element scatters into Cout/groups x kernel outputs
        return [(prod(a) * prod(b[1:]), int8)]
    if op in ("Attention", "QAttention") and b is not None:
        batch, seq, hidden = a
        heads = _attr(node, "num_heads", 1)
        projection = batch * seq * hidden * b[1]
        head = b[1] // 3 // heads
        scores_and_context = 2 * batch * heads * seq * seq * head
        return [(projection, int8), (scores_and_context, False)]  # QAttention: int8 projection, float softmax path
    return None


def count(path: str | Path, inputs: dict[str, list[int]]) -> dict[str, Any]:
    """MACs and FLOPs of an ONNX file at these input shapes, per op type, int8 and float apart."""
    import onnx

    model = onnx.load(str(path))
    shapes = _shapes(model, inputs)
    dequantized = {o for n in model.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    parts: list[tuple[str, int, bool]] = []
    uncounted: Counter = Counter()
    for node in model.graph.node:
        found = node_macs(node, shapes, dequantized)
        if found is None:
            if node.op_type in ("MatMul", "Gemm", "Conv", "Attention", *_INT8):
                uncounted[node.op_type] += 1  # a weighted op whose shapes inference could not fix
            continue
        parts += [(node.op_type, macs, int8) for macs, int8 in found]
    return tally(parts, uncounted)
