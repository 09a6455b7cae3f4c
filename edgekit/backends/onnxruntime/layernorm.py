"""SkipLayerNormalization written back as Add + LayerNormalization, in a form ONNX Runtime does not fuse again.

ONNX Runtime's CPU kernel for the fused SkipLayerNormalization normalizes each row in scalar loops; its
LayerNormalization kernel is vectorized. On the demo's MiniLM (64 tokens, x86 with AVX-512) the 12 fused nodes
took a quarter of the int8 file's time (benchmarks/minilm_static_int8.py measures files with and without).
ONNX Runtime's session fuses Add + LayerNormalization into the slow node when it loads a file, unless the
LayerNormalization reads a reshaped input: so the rows are normalized as a 2-D [rows, hidden] view and shaped
back (the two Reshapes cost about 2 us a call there). The backend option `unfuse_layernorm` turns it off.
"""

from __future__ import annotations

from typing import Any

FUSED = "SkipLayerNormalization"
MIN_OPSET = 17  # LayerNormalization's first opset


def _replacement(node, rows_shape: str) -> list[Any]:
    """The Add, Reshape, LayerNormalization, Shape and Reshape nodes that compute `node`'s first output."""
    from onnx import helper

    x, skip, gamma = node.input[:3]
    beta = node.input[3] if len(node.input) > 3 else ""
    bias = node.input[4] if len(node.input) > 4 else ""
    epsilon = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "epsilon"), 1e-12)
    name = node.name or node.output[0]
    total = node.output[3] if len(node.output) > 3 and node.output[3] else f"{name}_sum"
    nodes = []
    if bias:
        nodes.append(helper.make_node("Add", [x, bias], [f"{name}_biased"], name=f"{name}_bias"))
        x = f"{name}_biased"
    nodes += [
        helper.make_node("Add", [x, skip], [total], name=f"{name}_skip"),
        helper.make_node("Reshape", [total, rows_shape], [f"{name}_rows"], name=f"{name}_rows"),
        helper.make_node(
            "LayerNormalization",
            [f"{name}_rows", gamma, *([beta] if beta else [])],
            [f"{name}_normed"],
            name=f"{name}_norm",
            axis=-1,
            epsilon=float(epsilon),
        ),
        helper.make_node("Shape", [total], [f"{name}_shape"], name=f"{name}_shape"),
        helper.make_node("Reshape", [f"{name}_normed", f"{name}_shape"], [node.output[0]], name=f"{name}_out"),
    ]
    for each in nodes:
        each.metadata_props.extend(node.metadata_props)
    return nodes


def unfuse_skip_layernorm(model) -> int:
    """Rewrite each float SkipLayerNormalization of `model` (in place) whose mean and variance outputs nothing
    reads; returns how many. Nothing changes below opset 17 (no LayerNormalization there)."""
    import numpy as np
    from onnx import numpy_helper

    from edgekit.sources.onnx_source import onnx_opset

    if onnx_opset(model) < MIN_OPSET:
        return 0
    inits = {i.name: i for i in model.graph.initializer}
    read = {i for n in model.graph.node for i in n.input} | {o.name for o in model.graph.output}
    nodes, rewritten, shapes = [], 0, {}
    for node in model.graph.node:
        gamma = inits.get(node.input[2]) if node.op_type == FUSED and len(node.input) > 2 else None
        statistics = [o for o in node.output[1:3] if o and o in read]
        if gamma is None or statistics or gamma.data_type != 1 or len(gamma.dims) != 1:  # float32 gamma only
            nodes.append(node)
            continue
        hidden = int(gamma.dims[0])
        if hidden not in shapes:
            shapes[hidden] = f"skip_layernorm_rows_{hidden}"
            model.graph.initializer.append(numpy_helper.from_array(np.array([-1, hidden], np.int64), shapes[hidden]))
        nodes += _replacement(node, shapes[hidden])
        rewritten += 1
    if rewritten:
        del model.graph.node[:]
        model.graph.node.extend(nodes)
    return rewritten
