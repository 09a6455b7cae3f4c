"""Channel groups (edgekit/channel_groups.py) on the ONNX graph onnx2tf reads, for full-integer TFLite.

TFLite's int8 FULLY_CONNECTED takes its input at one scale and requantizes its output at one scale; on MiniLM that
is where the loss is (its feed-forward layers were the ones the fallback kept float). Each weighted MatMul (and
its bias Add) whose input or output channels span unlike ranges on the calibration data becomes one MatMul per
input group x output group: the input groups gathered from the input, the products summed, the output groups
concatenated and put back in order. The gathers, adds and concatenation are not layers: with the fallback's
non-linear ops float they compute in float between int8 FULLY_CONNECTED ops, each with its own scales.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from edgekit.backends.litert.tflite_file import fingerprint
from edgekit.backends.onnxruntime.probe import probe
from edgekit.backends.onnxruntime.quantize import replace_nodes
from edgekit.backends.onnxruntime.smooth import weighted_matmuls
from edgekit.channel_groups import grouping, sidecar_notes
from edgekit.data import Dataset


def split_channel_groups(
    model: Any, data: Dataset, batch_size: int, names: dict[tuple, str] | None = None
) -> tuple[dict, dict[tuple, list[tuple]]]:
    """Rewrite `model` in place; returns the sidecar's notes (layers named by `names`, weight fingerprint ->
    source layer, else by node) and, per grouped layer, its weight's fingerprint -> the fingerprints of its parts'
    weights (how the fallback finds a layer it keeps float)."""
    from onnx import numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    layers = _layers(model, inits)
    if not layers:
        return sidecar_notes({}), {}
    ranges, ranks = _ranges(model, layers, data, batch_size)
    groups = grouping(ranges)
    parts: dict[tuple, list[tuple]] = {}
    replaced: dict[str, list] = {}
    named = {}
    for out, (inputs, outputs) in groups.items():  # by the tensor the layer outputs
        matmul, bias_add = layers[out]
        weight = numpy_helper.to_array(inits[matmul.input[1]])
        bias = numpy_helper.to_array(inits[_bias_name(bias_add, matmul)]) if bias_add is not None else None
        nodes, new_inits = _grouped(matmul, bias_add, weight, bias, (inputs, outputs), ranks[out] - 1)
        model.graph.initializer.extend(new_inits)
        replaced[matmul.output[0]] = nodes
        if bias_add is not None:
            replaced[bias_add.output[0]] = []
        print_ = fingerprint(weight)
        parts[print_] = [fingerprint(numpy_helper.to_array(i)) for i in new_inits if i.name.endswith("_w")]
        named[(names or {}).get(print_) or matmul.name or out] = inputs, outputs
    replace_nodes(model.graph, [n for node in model.graph.node for n in replaced.get(node.output[0], [node])])
    return sidecar_notes(named), parts


def _bias_name(add: Any, matmul: Any) -> str:
    return next(i for i in add.input if i != matmul.output[0])


def _layers(model: Any, inits: dict) -> dict[str, tuple[Any, Any]]:
    """Weighted MatMuls (smooth.weighted_matmuls), by the name of the tensor they output, with the Add of a 1-D
    constant bias that alone reads their product, if any."""
    readers = Counter(i for n in model.graph.node for i in n.input)
    consumers: dict[str, list] = {}
    for node in model.graph.node:
        for i in node.input:
            consumers.setdefault(i, []).append(node)
    found = {}
    for node in weighted_matmuls(model, inits, readers):
        after = consumers.get(node.output[0], [])
        add = after[0] if len(after) == 1 and after[0].op_type == "Add" else None
        if add is not None:
            bias = inits.get(_bias_name(add, node))
            if bias is None or len(bias.dims) != 1 or readers[bias.name] != 1:
                add = None
        found[(add or node).output[0]] = (node, add)
    return found


def _ranges(model: Any, layers: dict, data: Dataset, batch_size: int) -> tuple[dict, dict[str, int]]:
    """Each layer's per-channel value range (max - min) of its input and of its output over the calibration data,
    and the rank of its output."""
    names = list(dict.fromkeys([*(m.input[0] for m, _ in layers.values()), *layers]))
    low: dict[str, np.ndarray] = {}
    high: dict[str, np.ndarray] = {}
    ranks: dict[str, int] = {}
    for values in probe(model, names, data, batch_size):
        for name, value in zip(names, values, strict=True):
            ranks[name] = np.ndim(value)
            flat = np.asarray(value, dtype=np.float32).reshape(-1, value.shape[-1])
            low[name] = np.minimum(low[name], flat.min(0)) if name in low else flat.min(0)
            high[name] = np.maximum(high[name], flat.max(0)) if name in high else flat.max(0)
    widths = {out: (high[m.input[0]] - low[m.input[0]], high[out] - low[out]) for out, (m, _) in layers.items()}
    return widths, {out: ranks[out] for out in layers}


def _grouped(matmul: Any, bias_add: Any, weight: np.ndarray, bias: np.ndarray | None, groups: tuple, axis: int):
    """The nodes and initializers computing the layer from its (input, output) channel groups, writing the layer's
    output tensor; `axis`: the channel axis (the last, counted from the front as onnx2tf prefers)."""
    from onnx import helper, numpy_helper

    inputs, outputs = groups
    base, data = matmul.name or matmul.output[0], matmul.input[0]
    result = (bias_add or matmul).output[0]
    nodes, inits = [], []

    def constant(array: np.ndarray, suffix: str) -> str:
        inits.append(numpy_helper.from_array(array, f"{base}_groups_{suffix}"))
        return inits[-1].name

    def node(op: str, ins: list[str], out: str, **attrs) -> str:
        nodes.append(helper.make_node(op, ins, [out], name=f"{out}_node", **attrs))
        nodes[-1].metadata_props.extend(matmul.metadata_props)  # the layer's scope, as its MatMul had it
        return out

    pieces = [
        data
        if len(inputs) == 1
        else node("Gather", [data, constant(cols.astype(np.int64), f"in{k}")], f"{base}_in{k}", axis=axis)
        for k, cols in enumerate(inputs)
    ]
    columns = []
    for o, rows in enumerate(outputs):
        total = ""
        for k, cols in enumerate(inputs):
            product = node(
                "MatMul", [pieces[k], constant(weight[np.ix_(cols, rows)], f"{o}_{k}_w")], f"{base}_p{o}_{k}"
            )
            total = node("Add", [total, product], f"{base}_s{o}_{k}") if total else product
        if bias is not None:
            total = node("Add", [total, constant(bias[rows], f"{o}_b")], f"{base}_b{o}")
        columns.append(total)
    if len(outputs) == 1:
        nodes[-1].output[0] = result
    else:
        joined = node("Concat", columns, f"{base}_joined", axis=axis)
        order = np.argsort(np.concatenate(outputs)).astype(np.int64)
        node("Gather", [joined, constant(order, "order")], result, axis=axis)
    return nodes, inits
