"""Activation smoothing of an ONNX graph before static int8 (edgekit.smoothing): each group of MatMuls that read
one activation gets its strength; the division is one `Mul` before the group (its input may feed a residual
path too, so it cannot fold into the producer)."""

from __future__ import annotations

import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.data import Dataset
from edgekit.smoothing import ALPHAS, SAMPLE_ROWS, ActivationStats, Int8Grid, choose_strength


@dataclass
class _Group:
    """The MatMul nodes that read one activation, and that activation's statistics."""

    tensor: str
    nodes: list[Any]
    stats: ActivationStats = field(default_factory=ActivationStats)


def smooth(model, data: Dataset, batch_size: int, grid: Int8Grid, skip: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Smooth the weighted MatMuls of `model` in place (nodes named in `skip` are left alone); returns what was
    done, for the sidecar."""
    from onnx import numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    groups = _groups(model, inits, skip)
    if not groups:
        return {"method": "SmoothQuant, strength per layer group", "groups": 0, "smoothed": 0}
    _observe(model, groups, data, batch_size)
    strengths: Counter = Counter()
    gains = []
    muls = {}
    for group in groups.values():
        weights = [numpy_helper.to_array(inits[n.input[1]]) for n in group.nodes]
        alpha, scales, gain = choose_strength(group.stats, weights, grid)
        if alpha is None:
            continue
        strengths[alpha] += 1
        gains.append(gain)
        muls[group.tensor] = _apply(model, inits, group, weights, scales)
    _insert_before_consumers(model, muls)
    return {
        "method": "SmoothQuant, strength per layer group",
        "alphas_tried": list(ALPHAS),
        "groups": len(groups),
        "smoothed": len(muls),
        "strengths": {str(a): n for a, n in sorted(strengths.items())},
        "median_error_ratio": round(float(np.median(gains)), 3) if gains else None,
    }


def _groups(model, inits: dict, skip: frozenset[str]) -> dict[str, _Group]:
    """MatMuls with a 2-D float weight, by the activation they read; a weight shared with another node is
    left as it is (scaling it would change that node too)."""
    from onnx import TensorProto

    readers = Counter(i for n in model.graph.node for i in n.input)
    groups: dict[str, _Group] = {}
    for node in model.graph.node:
        weight = inits.get(node.input[1]) if node.op_type == "MatMul" and len(node.input) == 2 else None
        if weight is None or len(weight.dims) != 2 or weight.data_type != TensorProto.FLOAT or node.name in skip:
            continue
        if readers[weight.name] == 1 and node.input[0] not in inits:
            groups.setdefault(node.input[0], _Group(node.input[0], [])).nodes.append(node)
    return groups


def _observe(model, groups: dict[str, _Group], data: Dataset, batch_size: int) -> None:
    """Run the calibration data once with every group's input as a graph output."""
    import onnx
    import onnxruntime as ort
    from onnx import helper

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    outputs = {o.name for o in probe.graph.output}
    for name in groups:
        if name not in outputs:
            probe.graph.output.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    names = list(groups)
    batches = list(data.batches(batch_size))
    keep = max(1, SAMPLE_ROWS // len(batches))
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "probe.onnx"
        onnx.save(probe, str(path), save_as_external_data=probe.ByteSize() > 1_500_000_000)
        options = ort.SessionOptions()
        options.log_severity_level = 3
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        for batch in batches:
            for name, value in zip(names, session.run(names, batch), strict=True):
                groups[name].stats.observe(np.asarray(value, dtype=np.float32), keep, rng)


def _apply(model, inits: dict, group: _Group, weights: list[np.ndarray], scales: np.ndarray):
    """Scale the group's weight rows by `scales` and feed the group `input / scales` (the Mul node returned)."""
    from onnx import helper, numpy_helper

    inverse, smoothed = f"{group.tensor}_smooth_inverse", f"{group.tensor}_smoothed"
    model.graph.initializer.append(numpy_helper.from_array((1.0 / scales).astype(np.float32), inverse))
    for node, w in zip(group.nodes, weights, strict=True):
        inits[node.input[1]].CopyFrom(numpy_helper.from_array((w * scales[:, None]).astype(np.float32), node.input[1]))
        node.input[0] = smoothed
    mul = helper.make_node("Mul", [group.tensor, inverse], [smoothed], name=f"{group.nodes[0].name}_smooth")
    mul.metadata_props.extend(group.nodes[0].metadata_props)  # the layer's scope: the fallback keeps it with it
    return mul


def _insert_before_consumers(model, muls: dict[str, Any]) -> None:
    """Each Mul right before the first node that reads its output (the graph stays topologically sorted)."""
    by_output = {mul.output[0]: mul for mul in muls.values()}
    ordered: list[Any] = []
    for node in model.graph.node:
        ordered.extend(by_output.pop(i) for i in node.input if i in by_output)
        ordered.append(node)
    del model.graph.node[:]
    model.graph.node.extend(ordered)
