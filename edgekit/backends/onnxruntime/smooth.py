"""Activation smoothing (SmoothQuant) of an ONNX graph before static int8, its strength chosen per layer group.

A per-tensor int8 scale on an activation with outlier channels (BERT-class LayerNorm and GELU outputs) leaves
the other channels a few levels. Dividing channel j of the activation by s_j and multiplying row j of each
weight that reads it by s_j computes the same product, with the outliers moved into the weights, which are
quantized per output channel. s_j = max|x_j|^alpha / max|w_j|^(1 - alpha); one global alpha suits some layers
and hurts others, so each group of MatMuls reading one activation gets the alpha whose simulated int8 output
error on the calibration data is lowest, or no smoothing when that does not lower it clearly. The division is
one `Mul` before the group (its input may feed a residual path too, so it cannot fold into the producer), except
after an attention, whose output is linear in its value projection: there the division scales that projection's
output columns and bias (its weights are quantized per output column, so nothing is lost) and costs nothing.
A `Mul` costs run time (on MiniLM each of the six after the feed-forward GELU took 0.4 % of the int8 file's), so
a group that needs one is smoothed only when its error falls 4x, as a channel split must (channel_groups.py).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgekit.backends.onnxruntime.probe import probe
from edgekit.data import Dataset
from edgekit.sensitivity import fake_quant_activation, symmetric_int8

ALPHAS = (0.25, 0.4, 0.5, 0.6, 0.75, 0.9)
MIN_GAIN = 0.8  # a group is smoothed only when its simulated error falls below this fraction of the plain one
MIN_GAIN_WITH_MUL = 0.25  # ... and below this one when the division costs a Mul node
SAMPLE_ROWS = 4096  # activation rows kept to simulate each group's error (channel ranges use every row)
METHOD = "SmoothQuant, strength per layer group"


@dataclass(frozen=True)
class Int8Grid:
    """The grid the quantizer will put tensors on, to simulate it: activations per tensor (min/max calibrated,
    as quantize_static's MinMax), weights symmetric per output channel."""

    activation_symmetric: bool
    weight_qmax: int  # 127, or 64 with reduce_range (OrtPlan.weight_qmax)

    def activations(self, x: np.ndarray, lo: float, hi: float) -> np.ndarray:
        return fake_quant_activation(x, lo, hi, self.activation_symmetric)

    def weights(self, w: np.ndarray) -> np.ndarray:
        """`w` ([in, out]) as the quantizer will hold it, back in float."""
        q, scale = symmetric_int8(w, axis=w.ndim - 1, qmax=self.weight_qmax)
        return q * scale


@dataclass
class ActivationStats:
    """One activation's per-channel range over the calibration data, and a sample of its rows."""

    lo: np.ndarray | None = None
    hi: np.ndarray | None = None
    rows: list[np.ndarray] = field(default_factory=list)

    def observe(self, x: np.ndarray, keep: int, rng: np.random.Generator) -> None:
        x = x.reshape(-1, x.shape[-1])
        lo, hi = x.min(axis=0), x.max(axis=0)
        self.lo = lo if self.lo is None else np.minimum(self.lo, lo)
        self.hi = hi if self.hi is None else np.maximum(self.hi, hi)
        self.rows.append(x[rng.choice(len(x), size=min(len(x), keep), replace=False)])


def choose_strength(
    stats: ActivationStats, weights: list[np.ndarray], grid: Int8Grid
) -> tuple[float | None, np.ndarray, float]:
    """For the layers that read one activation (`weights`: each as [in, out], x @ w), the alpha with the lowest
    simulated int8 output error (None: leave it unsmoothed), its scales s (divide the activation's channels by
    them, multiply the weights' rows) and that error relative to the unsmoothed one."""
    assert stats.lo is not None and stats.hi is not None and stats.rows
    x = np.concatenate(stats.rows)
    exact = [x @ w for w in weights]

    def error(scales: np.ndarray) -> float:
        xq = grid.activations(x / scales, float((stats.lo / scales).min()), float((stats.hi / scales).max()))
        return sum(
            float(((xq @ grid.weights(w * scales[:, None]) - y) ** 2).sum() / max(float((y**2).sum()), 1e-30))
            for w, y in zip(weights, exact, strict=True)
        )

    x_max = np.maximum(np.maximum(np.abs(stats.lo), np.abs(stats.hi)), 1e-5)
    w_max = np.maximum(np.max([np.abs(w).max(axis=1) for w in weights], axis=0), 1e-5)
    plain = error(np.ones_like(x_max))
    best: tuple[float | None, np.ndarray, float] = (None, np.ones_like(x_max), plain)
    for alpha in ALPHAS:
        scales = np.clip(x_max**alpha / w_max ** (1 - alpha), 1e-4, 1e4).astype(np.float32)
        err = error(scales)
        if err < best[2]:
            best = (alpha, scales, err)
    chosen, scales, err = best
    if chosen is None or plain == 0 or err > MIN_GAIN * plain:
        return None, scales, 1.0
    return chosen, scales, err / plain


@dataclass
class _Group:
    """The MatMul nodes that read one activation, and that activation's statistics."""

    tensor: str
    nodes: list[Any]
    stats: ActivationStats = field(default_factory=ActivationStats)


def smooth(model, data: Dataset, batch_size: int, grid: Int8Grid) -> dict[str, Any]:
    """Smooth the weighted MatMuls of `model` in place; returns what was done, for the sidecar."""
    from onnx import numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    producers = {o: n for n in model.graph.node for o in n.output}
    readers = Counter(i for n in model.graph.node for i in n.input)
    groups = _groups(model, inits, readers)
    if not groups:
        return {"method": METHOD, "groups": 0, "smoothed": 0}
    _observe(model, groups, data, batch_size)
    strengths: Counter = Counter()
    gains = []
    muls = {}
    folded = costly = 0
    for group in groups.values():
        weights = [numpy_helper.to_array(inits[n.input[1]]) for n in group.nodes]
        value = _value_projection(producers.get(group.tensor), producers, inits, readers)
        alpha, scales, gain = choose_strength(group.stats, weights, grid)
        if alpha is None:
            continue
        if value is None and gain > MIN_GAIN_WITH_MUL:
            costly += 1
            continue
        strengths[alpha] += 1
        gains.append(gain)
        if value is None:
            muls[group.tensor] = _apply(model, inits, group, weights, scales)
        else:  # the attention's output divided by its value projection: the group reads it as it is
            _scale_rows(inits, group, weights, scales)
            _fold_into_value(inits, *value, scales)
            folded += 1
    _insert_before_consumers(model, muls)
    return {
        "method": METHOD,
        "alphas_tried": list(ALPHAS),
        "groups": len(groups),
        "smoothed": len(muls) + folded,
        **({"folded_into_value_projection": folded} if folded else {}),
        **({f"not_worth_a_mul (error not {1 / MIN_GAIN_WITH_MUL:g}x lower)": costly} if costly else {}),
        "strengths": {str(a): n for a, n in sorted(strengths.items())},
        "median_error_ratio": round(float(np.median(gains)), 3) if gains else None,
    }


def weighted_matmuls(model, inits: dict, readers: Counter) -> list[Any]:
    """MatMuls with a 2-D float weight that no other node reads (rewriting it changes no other node) and a
    computed input: the layers a float-graph rewrite before int8 may scale or split. `readers`: how many nodes
    read each tensor."""
    from onnx import TensorProto

    found = []
    for node in model.graph.node:
        weight = inits.get(node.input[1]) if node.op_type == "MatMul" and len(node.input) == 2 else None
        if weight is None or len(weight.dims) != 2 or weight.data_type != TensorProto.FLOAT:
            continue
        if readers[weight.name] == 1 and node.input[0] not in inits:
            found.append(node)
    return found


def _groups(model, inits: dict, readers: Counter) -> dict[str, _Group]:
    """The weighted MatMuls by the activation they read (`readers`: how many nodes read each tensor)."""
    groups: dict[str, _Group] = {}
    for node in weighted_matmuls(model, inits, readers):
        groups.setdefault(node.input[0], _Group(node.input[0], [])).nodes.append(node)
    return groups


def _observe(model, groups: dict[str, _Group], data: Dataset, batch_size: int) -> None:
    """Run the calibration data once with every group's input as a graph output."""
    names = list(groups)
    keep = max(1, SAMPLE_ROWS // max(1, math.ceil(len(data) / batch_size)))  # rows per batch, SAMPLE_ROWS in all
    rng = np.random.default_rng(0)
    for values in probe(model, names, data, batch_size):
        for name, value in zip(names, values, strict=True):
            groups[name].stats.observe(np.asarray(value, dtype=np.float32), keep, rng)


def _scale_rows(inits: dict, group: _Group, weights: list[np.ndarray], scales: np.ndarray) -> None:
    """Multiply the group's weight rows by `scales`."""
    from onnx import numpy_helper

    for node, w in zip(group.nodes, weights, strict=True):
        inits[node.input[1]].CopyFrom(numpy_helper.from_array((w * scales[:, None]).astype(np.float32), node.input[1]))


def _apply(model, inits: dict, group: _Group, weights: list[np.ndarray], scales: np.ndarray):
    """Scale the group's weight rows by `scales` and feed the group `input / scales` (the Mul node returned)."""
    from onnx import helper, numpy_helper

    inverse, smoothed = f"{group.tensor}_smooth_inverse", f"{group.tensor}_smoothed"
    model.graph.initializer.append(numpy_helper.from_array((1.0 / scales).astype(np.float32), inverse))
    _scale_rows(inits, group, weights, scales)
    for node in group.nodes:
        node.input[0] = smoothed
    mul = helper.make_node("Mul", [group.tensor, inverse], [smoothed], name=f"{group.nodes[0].name}_smooth")
    mul.metadata_props.extend(group.nodes[0].metadata_props)  # the layer's scope: the fallback keeps it with it
    return mul


def _value_projection(attention, producers: dict, inits: dict, readers: Counter) -> tuple[str, str] | None:
    """The weight of the value projection of a MultiHeadAttention (packed query/key/value bias as an initializer)
    and that bias, when nothing else reads either or the projection: its output columns may then be scaled."""
    if attention is None or attention.op_type != "MultiHeadAttention" or len(attention.input) < 4:
        return None
    value, bias = producers.get(attention.input[2]), attention.input[3]
    if value is None or value.op_type != "MatMul" or readers[value.output[0]] != 1:
        return None
    weight = value.input[1]
    if weight not in inits or bias not in inits or readers[weight] != 1 or readers[bias] != 1:
        return None
    return weight, bias


def _fold_into_value(inits: dict, weight: str, bias: str, scales: np.ndarray) -> None:
    """Divide the value projection's output columns (the last third of the packed bias) by `scales`: the
    attention's output channel j is then divided by s_j."""
    from onnx import numpy_helper

    w, b = numpy_helper.to_array(inits[weight]), numpy_helper.to_array(inits[bias]).copy()
    b[len(b) - len(scales) :] /= scales
    inits[weight].CopyFrom(numpy_helper.from_array((w / scales[None, :]).astype(np.float32), weight))
    inits[bias].CopyFrom(numpy_helper.from_array(b.astype(np.float32), bias))


def _insert_before_consumers(model, muls: dict[str, Any]) -> None:
    """Each Mul right before the first node that reads its output (the graph stays topologically sorted)."""
    by_output = {mul.output[0]: mul for mul in muls.values()}
    ordered: list[Any] = []
    for node in model.graph.node:
        ordered.extend(by_output.pop(i) for i in node.input if i in by_output)
        ordered.append(node)
    del model.graph.node[:]
    model.graph.node.extend(ordered)
