"""The arithmetic work of an OpenVINO IR at the benchmarked input shapes (edgekit.backends.work's document).

The model is reshaped to those shapes, so every shape is static. Counted: MatMul, Convolution,
GroupConvolution and the fused ScaledDotProductAttention (scores and context, float). A MatMul or
convolution runs in int8 when both operands are quantized: the activation through NNCF's FakeQuantize, the
weight an int8 constant (possibly through its dequantizing Convert/Subtract/Multiply); weight-only files
(openvino-int8-weights) keep float activations, so the CPU runs them as float GEMMs.
"""

from __future__ import annotations

from collections import Counter
from math import prod
from pathlib import Path
from typing import Any

from edgekit.backends.openvino.stack import import_stack
from edgekit.backends.work import tally

# ops between a quantized tensor and its consumer that keep it int8 (dequantizing, layout, max pooling)
_PASS_THROUGH = {"Convert", "Subtract", "Multiply", "Reshape", "Transpose", "Unsqueeze", "Squeeze", "MaxPool"}
_INT_TYPES = {"i8", "u8", "i4", "u4"}


def _quantized(port) -> bool:
    """Whether an input reaches its op quantized: a FakeQuantize or an integer constant upstream, through
    the ops that only dequantize or lay the data out."""
    node = port.get_source_output().get_node()
    for _ in range(8):
        kind = node.get_type_name()
        if kind == "FakeQuantize":
            return True
        if kind == "Constant":
            return node.get_element_type().get_type_name() in _INT_TYPES
        if kind not in _PASS_THROUGH or node.get_input_size() == 0:
            return False
        node = node.input(0).get_source_output().get_node()
    return False


def _macs(op) -> tuple[int, bool] | None:
    kind = op.get_type_name()
    out = list(op.output(0).get_shape())
    if kind == "MatMul":
        a = list(op.input(0).get_shape())
        k = a[-2] if op.get_attributes().get("transpose_a") and len(a) > 1 else a[-1]
        return prod(out) * k, _quantized(op.input(0)) and _quantized(op.input(1))
    if kind == "Convolution":  # weight: Cout x Cin x kernel
        weight = list(op.input(1).get_shape())
        return prod(out) * prod(weight[1:]), _quantized(op.input(0)) and _quantized(op.input(1))
    if kind == "GroupConvolution":  # weight: groups x Cout/groups x Cin/groups x kernel
        weight = list(op.input(1).get_shape())
        return prod(out) * prod(weight[2:]), _quantized(op.input(0)) and _quantized(op.input(1))
    if kind == "ScaledDotProductAttention":  # q: ... x S x D, k: ... x L x D; scores and context, float
        q, k = list(op.input(0).get_shape()), list(op.input(1).get_shape())
        return 2 * prod(q) * k[-2], False
    return None


def count(path: Path, inputs: dict[str, list[int]]) -> dict[str, Any]:
    """MACs and FLOPs of the IR at these input shapes, per op type, int8 and float apart."""
    ov = import_stack("openvino", "Counting an OpenVINO IR's work")
    model = ov.Core().read_model(str(path))
    names = {name for port in model.inputs for name in port.get_names()}
    model.reshape({name: shape for name, shape in inputs.items() if name in names})
    parts: list[tuple[str, int, bool]] = []
    uncounted: Counter = Counter()
    for op in model.get_ordered_ops():
        try:
            found = _macs(op)
        except RuntimeError:  # a shape the reshape left dynamic
            uncounted[op.get_type_name()] += 1
            continue
        if found is not None:
            parts.append((op.get_type_name(), *found))
    return tally(parts, uncounted)
