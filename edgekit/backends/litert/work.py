"""The arithmetic work of a .tflite file at the benchmarked input shapes (edgekit.backends.work's document).

Read from the flatbuffer itself (its tensors carry their shapes; a free dimension, -1, is the benchmarked
batch). Counted: FULLY_CONNECTED, BATCH_MATMUL, CONV_2D and DEPTHWISE_CONV_2D. An op runs in int8 when its
weight is int8 (dynamic-range files quantize the activation at run time and run an int8 GEMM; full-int8
files are int8 throughout); a BATCH_MATMUL of two activations when both are.
"""

from __future__ import annotations

from collections import Counter
from math import prod
from pathlib import Path
from typing import Any

from edgekit.backends.litert.tflite_file import OpInfo, read_tflite
from edgekit.backends.work import tally

_INT = {"INT8", "UINT8", "INT4"}


def _macs(op: OpInfo, batch: int) -> tuple[int, bool] | None:
    shape = lambda i: [batch if d < 0 else d for d in op.inputs[i].shape]
    out = [batch if d < 0 else d for d in op.outputs[0].shape] if op.outputs else []
    if op.op == "FULLY_CONNECTED":  # weight: N x K
        return prod(out) * shape(1)[-1], op.inputs[1].dtype in _INT
    if op.op == "BATCH_MATMUL":
        a, b = shape(0), shape(1)
        k = a[-1] if a[-1] in (b[-2], b[-1]) else a[-2]
        return prod(out) * k, op.inputs[0].dtype in _INT and op.inputs[1].dtype in _INT
    if op.op == "CONV_2D":  # weight: Cout x kh x kw x Cin
        return prod(out) * prod(shape(1)[1:]), op.inputs[1].dtype in _INT
    if op.op == "DEPTHWISE_CONV_2D":  # weight: 1 x kh x kw x C
        return prod(out) * prod(shape(1)[1:3]), op.inputs[1].dtype in _INT
    return None


def count(path: Path, inputs: dict[str, list[int]]) -> dict[str, Any]:
    """MACs and FLOPs of the file at these input shapes, per op type, int8 and float apart."""
    batch = next(iter(inputs.values()), [1])[0] if inputs else 1
    parts: list[tuple[str, int, bool]] = []
    uncounted: Counter = Counter()
    for op in read_tflite(path).ops:
        try:
            found = _macs(op, batch)
        except IndexError:  # an op without the operands its kind has: not counted
            uncounted[op.op] += 1
            continue
        if found is not None:
            parts.append((op.op, *found))
    return tally(parts, uncounted)
