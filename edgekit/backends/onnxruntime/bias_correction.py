"""Empirical bias correction of an ONNX graph before static int8: int8 weights shift each output channel's mean,
most in depthwise convolutions, whose few weights per channel round coarsely. For each Conv and Gemm whose weight
the quantizer will round (symmetric, per output channel or per tensor, as ONNX Runtime does), the expected error
the rounding adds, (W_q - W) . E[x] with E[x] the per-channel mean of the layer's input on the calibration data,
is taken off its bias, so the quantized layer's output keeps the float layer's mean.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from edgekit.backends.onnxruntime.probe import probe
from edgekit.data import Dataset
from edgekit.sensitivity import symmetric_int8

METHOD = "bias correction (data-aware: per-channel input means)"


@dataclass(frozen=True)
class WeightGrid:
    """How ONNX Runtime will round the weights: symmetric int8 in [-qmax, qmax] (127; 64 with reduce_range), one
    scale per output channel or one per tensor."""

    qmax: int
    per_channel: bool

    def scale(self, w: np.ndarray) -> np.ndarray:
        """The step of each output channel of `w` (on axis 0), or of the whole tensor, shaped to broadcast."""
        flat = w.reshape(w.shape[0], -1) if self.per_channel else w.reshape(1, -1)
        _, scale = symmetric_int8(flat, axis=0, qmax=self.qmax)
        return scale.reshape((-1,) + (1,) * (w.ndim - 1)) if self.per_channel else scale

    def rounded(self, w: np.ndarray) -> np.ndarray:
        """`w` (output channels on axis 0) as the quantizer will hold it, back in float."""
        scale = self.scale(w)
        return np.clip(np.round(w / scale), -self.qmax, self.qmax) * scale


def correct_biases(model: Any, data: Dataset, batch_size: int, grid: WeightGrid, skip: set[str]) -> dict[str, Any]:
    """Shift the biases of `model`'s Conv and Gemm nodes (not those named in `skip`: kept float) in place; returns
    what was done, for the sidecar."""
    from onnx import numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    layers = [
        (n, w)
        for n in model.graph.node
        if n.op_type in ("Conv", "Gemm") and n.name not in skip and (w := weight_as_out_in(n, inits)) is not None
    ]
    if not layers:
        return {"method": METHOD, "layers": 0}
    means = _input_means(model, sorted({n.input[0] for n, _ in layers}), data, batch_size)
    shifts = []
    for node, w in layers:
        error = _output_error(node, w, grid.rounded(w), means[node.input[0]])
        bias = _bias(model, node, inits, len(error))
        value = numpy_helper.to_array(inits[bias])
        inits[bias].CopyFrom(numpy_helper.from_array((value - error).astype(value.dtype), bias))
        shifts.append(float(np.abs(error).max()))
    return {"method": METHOD, "layers": len(layers), "max_shift": round(max(shifts), 6)}


def weight_as_out_in(node: Any, inits: dict) -> np.ndarray | None:
    """A Conv's, Gemm's or MatMul's constant float weight as [out, in, ...] (a Gemm's B transposed when transB is
    0, a MatMul's always), or None."""
    from onnx import helper, numpy_helper

    if node.op_type not in ("Conv", "Gemm", "MatMul") or len(node.input) < 2 or node.input[1] not in inits:
        return None
    w = numpy_helper.to_array(inits[node.input[1]])
    if w.dtype != np.float32:
        return None
    if node.op_type == "Conv":
        return w
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    if attrs.get("transA", 0) or w.ndim != 2:
        return None
    return w if attrs.get("transB", 0) else w.T


def _output_error(node: Any, w: np.ndarray, rounded: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Per output channel: the mean error the rounded weight adds, (W_q - W) . E[x] (a grouped Conv reads its
    own slice of the input channels)."""
    delta = (rounded - w).reshape(w.shape[0], w.shape[1], -1).sum(axis=2)  # [out, in per group]
    if node.op_type == "Gemm":
        return delta @ mean
    from onnx import helper

    groups = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "group"), 1)
    per_group = w.shape[0] // groups
    slices = mean.reshape(groups, w.shape[1])  # each group's input channels
    return np.einsum("oi,oi->o", delta, np.repeat(slices, per_group, axis=0))


def _bias(model: Any, node: Any, inits: dict, channels: int) -> str:
    """The name of the node's bias initializer, made (zeros) when it has none."""
    from onnx import numpy_helper

    index = 2
    if len(node.input) > index and node.input[index] in inits:
        return node.input[index]
    name = f"{node.name or node.output[0]}_corrected_bias"
    model.graph.initializer.append(numpy_helper.from_array(np.zeros(channels, np.float32), name))
    inits[name] = model.graph.initializer[-1]
    while len(node.input) < index:
        node.input.append("")
    if len(node.input) == index:
        node.input.append(name)
    else:
        node.input[index] = name
    return name


def _input_means(model: Any, names: list[str], data: Dataset, batch_size: int) -> dict[str, np.ndarray]:
    """Each named tensor's mean per channel (axis 1 of a feature map, the last axis of a matrix)."""
    sums: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    for values in probe(model, names, data, batch_size):
        for name, x in zip(names, values, strict=True):
            x = np.asarray(x, dtype=np.float64)
            moved = np.moveaxis(x, 1, -1) if x.ndim > 2 else x
            flat = moved.reshape(-1, moved.shape[-1])
            sums[name] = sums.get(name, 0) + flat.sum(axis=0)
            counts[name] = counts.get(name, 0) + len(flat)
    return {name: sums[name] / counts[name] for name in names}
