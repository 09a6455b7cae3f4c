"""A static int8 encoder file rewritten into the integer ops ONNX Runtime's CPU kernels run fastest.

ONNX Runtime turns the QDQ graph into integer kernels when it loads the file, but a fused encoder keeps two costs
the dynamic int8 file does not have: its MultiHeadAttention reads three separately quantized projections
(three small integer GEMMs, then the float bias added and transposed inside the attention), and the output and
feed-forward projections add their bias in a separate Add. Here the three projections of each MultiHeadAttention
become one QAttention (one packed integer GEMM that reads the calibrated int8 input, as the dynamic file's
QAttention reads a per-call one), and each MatMul + bias Add one MatMulIntegerToFloat with its bias. Both are
what the loaded QDQ graph computes, with the same int8 weights, scales and zero points (on the demo's MiniLM,
with smoothing's cost rule in smooth.py, the static file went from 0.88x the dynamic file's speed to 1.00x;
benchmarks/minilm_static_int8.py).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

MS = "com.microsoft"


@dataclass
class _Graph:
    """What the rewrites look up: each tensor's producer, how many nodes read it, the initializers."""

    producer: dict[str, Any]
    readers: Counter
    inits: dict[str, Any]

    @classmethod
    def of(cls, model) -> _Graph:
        graph = model.graph
        return cls(
            {o: n for n in graph.node for o in n.output},
            Counter(i for n in graph.node for i in n.input) + Counter(o.name for o in graph.output),
            {i.name: i for i in graph.initializer},
        )

    def array(self, name: str) -> np.ndarray:
        from onnx import numpy_helper

        return numpy_helper.to_array(self.inits[name])

    def dequantized_weight(self, tensor: str) -> Any | None:
        """The DequantizeLinear of a constant 2-D int8/uint8 weight ([in, out]) that computes `tensor`, read by
        one node, with one scale or a scale per output column (what the integer ops take)."""
        node = self.producer.get(tensor)
        if node is None or node.op_type != "DequantizeLinear" or self.readers[tensor] != 1:
            return None
        if len(node.input) < 3 or not all(i in self.inits for i in node.input) or self.array(node.input[0]).ndim != 2:
            return None
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        return node if self.array(node.input[1]).size == 1 or axis in (1, -1) else None

    def dequantized_activation(self, tensor: str) -> Any | None:
        """The DequantizeLinear of a computed tensor with one scale and zero point (per tensor)."""
        node = self.producer.get(tensor)
        if node is None or node.op_type != "DequantizeLinear" or len(node.input) < 3 or node.input[0] in self.inits:
            return None
        if not all(i in self.inits and self.array(i).size == 1 for i in node.input[1:3]):
            return None
        return node


def _per_column(g: _Graph, dq, columns: int) -> tuple[np.ndarray, np.ndarray]:
    """A weight DequantizeLinear's scale and zero point, one per output column."""
    scale, zero = g.array(dq.input[1]), g.array(dq.input[2])
    return np.broadcast_to(scale, (columns,)).astype(np.float32), np.broadcast_to(zero, (columns,)).astype(zero.dtype)


def _packed_attention(g: _Graph, mha) -> tuple[Any, list, list] | None:
    """The QAttention that computes `mha` from its quantized projections, its new initializers and the projection
    MatMuls it makes unneeded; None when `mha` does not read three quantized projections of one int8 input."""
    from onnx import helper, numpy_helper

    inputs = list(mha.input) + [""] * 5
    if mha.domain != MS or len(mha.input) > 5 or inputs[3] not in g.inits:
        return None
    matmuls: list[Any] = [g.producer.get(t) for t in inputs[:3]]
    if any(m is None or m.op_type != "MatMul" or g.readers[m.output[0]] != 1 for m in matmuls):
        return None
    if len({m.input[0] for m in matmuls}) != 1:
        return None
    x = g.dequantized_activation(matmuls[0].input[0])
    weights: list[Any] = [g.dequantized_weight(m.input[1]) for m in matmuls]
    if x is None or any(w is None for w in weights) or g.array(x.input[2]).dtype != np.uint8:
        return None  # ONNX Runtime's QAttention takes uint8 input
    ints = [g.array(w.input[0]) for w in weights]
    if any(w.dtype != ints[0].dtype for w in ints):
        return None
    scales, zeros = zip(*(_per_column(g, w, q.shape[1]) for w, q in zip(weights, ints, strict=True)), strict=True)
    name = mha.name or mha.output[0]
    added = [
        numpy_helper.from_array(np.concatenate(ints, axis=1), f"{name}_qkv_weight"),
        numpy_helper.from_array(np.concatenate(scales), f"{name}_qkv_weight_scale"),
        numpy_helper.from_array(np.concatenate(zeros), f"{name}_qkv_weight_zero_point"),
    ]
    packed = [x.input[0], added[0].name, inputs[3], x.input[1], added[1].name, inputs[4], x.input[2], added[2].name]
    node = helper.make_node("QAttention", packed, [mha.output[0]], name=f"{name}_int8", domain=MS)
    node.attribute.extend(mha.attribute)  # num_heads, unidirectional, mask_filter_value, scale: the same meaning
    node.metadata_props.extend(mha.metadata_props)
    return node, added, matmuls


def pack_attention(model) -> int:
    """Rewrite (in place) each MultiHeadAttention that reads three int8 projections of one int8 input as a
    QAttention; returns how many."""
    g = _Graph.of(model)
    replaced: dict[int, Any] = {}
    dropped: set[int] = set()
    for node in model.graph.node:
        if node.op_type != "MultiHeadAttention":
            continue
        found = _packed_attention(g, node)
        if found is None:
            continue
        packed, added, projections = found
        model.graph.initializer.extend(added)
        replaced[id(node)] = packed
        dropped |= {id(n) for n in projections}
    _rebuild(model, replaced, dropped)
    return len(replaced)


def bias_into_matmul(model) -> int:
    """Rewrite (in place) each int8 MatMul whose only reader adds a constant bias as one MatMulIntegerToFloat
    with that bias; returns how many."""
    from onnx import helper

    g = _Graph.of(model)
    adds = {i: n for n in model.graph.node if n.op_type == "Add" for i in n.input}
    replaced: dict[int, Any] = {}
    dropped: set[int] = set()
    for node in model.graph.node:
        if node.op_type != "MatMul" or len(node.input) != 2 or g.readers[node.output[0]] != 1:
            continue
        x, w = g.dequantized_activation(node.input[0]), g.dequantized_weight(node.input[1])
        add = adds.get(node.output[0])
        if x is None or w is None or add is None:
            continue
        bias = next((i for i in add.input if i != node.output[0]), "")
        columns = g.array(w.input[0]).shape[-1]
        if bias not in g.inits or g.array(bias).shape != (columns,) or g.array(bias).dtype != np.float32:
            continue
        inputs = [x.input[0], w.input[0], x.input[1], w.input[1], x.input[2], w.input[2], bias]
        fused = helper.make_node("MatMulIntegerToFloat", inputs, [add.output[0]], name=f"{node.name}_bias", domain=MS)
        fused.metadata_props.extend(node.metadata_props)
        replaced[id(node)] = fused
        dropped.add(id(add))
    if replaced and not any(o.domain == MS for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(MS, 1))
    _rebuild(model, replaced, dropped)
    return len(replaced)


def _rebuild(model, replaced: dict[int, Any], dropped: set[int]) -> None:
    """The graph with nodes replaced in place and dropped, then the DequantizeLinear nodes and initializers
    nothing reads any more removed."""
    graph = model.graph
    nodes = [replaced.get(id(n), n) for n in graph.node if id(n) not in dropped]
    read = Counter(i for n in nodes for i in n.input) + Counter(o.name for o in graph.output)
    nodes = [n for n in nodes if n.op_type != "DequantizeLinear" or read[n.output[0]]]
    read = Counter(i for n in nodes for i in n.input) + Counter(o.name for o in graph.output)
    kept = [i for i in graph.initializer if read[i.name]]
    produced = {o for n in nodes for o in n.output}
    info = [v for v in graph.value_info if v.name in produced]
    del graph.node[:], graph.initializer[:], graph.value_info[:]
    graph.node.extend(nodes)
    graph.initializer.extend(kept)
    graph.value_info.extend(info)


def rewrite_int8_encoder(model) -> dict[str, int]:
    """Both rewrites, attention first (its projections have no bias Add); returns the counts that are not 0."""
    counts = {"QAttention": pack_attention(model), "MatMulIntegerToFloat": bias_into_matmul(model)}
    return {k: v for k, v in counts.items() if v}
