"""Read a .tflite flatbuffer (LiteRT's schema): its operators with their tensor types, and its I/O.

The full-integer check and the sidecar read the file itself, not the converter's settings, so a
file is called int8 only when its operators are.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit._lazy import require
from edgekit.errors import ModelLoadError

# Operators that only move data between float and integer domains, or reshape it: not compute.
# A full-integer file may quantize float inputs and dequantize float outputs at its edges only.
CONVERSION_OPS = frozenset({"QUANTIZE", "DEQUANTIZE"})
FLOAT_TYPES = frozenset({"FLOAT32", "FLOAT16", "FLOAT64"})


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: str  # the schema's TensorType name: FLOAT32, INT8, INT16, INT32, INT64, ...
    shape: tuple[int, ...]  # -1 where the signature leaves a dim free
    scale: float | None = None
    zero_point: int | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "dtype": self.dtype.lower(), "shape": list(self.shape)}
        if self.scale is not None:
            out["quantization"] = {"scale": self.scale, "zero_point": self.zero_point}
        return out


@dataclass(frozen=True)
class OpInfo:
    index: int
    op: str  # builtin operator name, e.g. CONV_2D, or the custom code
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]

    @property
    def computes_in_float(self) -> bool:
        """A compute op with a float activation input or output (weights alone do not count: fp16 or
        dynamic-range files keep float weights that get dequantized)."""
        if self.op in CONVERSION_OPS:
            return False
        if self.op == "CAST" and not any(t.dtype in FLOAT_TYPES for t in self.inputs):
            return False  # an integer input (a transformer's attention mask) made float for a QUANTIZE
        return any(t.dtype in FLOAT_TYPES for t in self.outputs)


@dataclass(frozen=True)
class TFLiteFile:
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    ops: tuple[OpInfo, ...]

    def op_types(self) -> list[str]:
        return sorted({o.op for o in self.ops})

    def float_ops(self) -> list[OpInfo]:
        return [o for o in self.ops if o.computes_in_float]

    def float_op_types(self) -> dict[str, int]:
        """How many ops of each type compute in float (in a file partly left float)."""
        return dict(sorted(Counter(o.op for o in self.float_ops()).items()))


def _names(enum_cls) -> dict[int, str]:
    return {v: k for k, v in vars(enum_cls).items() if not k.startswith("_") and isinstance(v, int)}


def _unpack(path: str | Path | bytes):
    """The flatbuffer schema module, the unpacked model and its main subgraph (a path or the bytes)."""
    schema = require("ai_edge_litert.schema_py_generated", "Reading a .tflite file", extra="tflite")
    data = path if isinstance(path, bytes) else Path(path).read_bytes()
    try:
        model = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
        return schema, model, model.subgraphs[0]
    except Exception as e:  # the flatbuffer reader raises struct/index errors on garbage
        raise ModelLoadError(
            f"{path if not isinstance(path, bytes) else 'The data'} is not a valid .tflite "
            f"flatbuffer ({type(e).__name__})."
        ) from None


def _op_names(schema, model) -> list[str]:
    """Each operator code's name: the builtin operator's, or the custom code."""
    builtin = _names(schema.BuiltinOperator)
    names = []
    for code in model.operatorCodes:
        kind = max(code.builtinCode, code.deprecatedBuiltinCode)
        custom = code.customCode.decode() if isinstance(code.customCode, bytes) else code.customCode
        names.append(custom if kind == schema.BuiltinOperator.CUSTOM else builtin.get(kind, str(kind)))
    return names


def read_tflite(path: str | Path | bytes) -> TFLiteFile:
    """Parse the main subgraph of a .tflite file (a path or its bytes)."""
    schema, model, graph = _unpack(path)
    tensor_types, op_names = _names(schema.TensorType), _op_names(schema, model)

    def tensor(i: int) -> TensorInfo:
        t = graph.tensors[i]
        shape = t.shapeSignature if t.shapeSignature is not None and len(t.shapeSignature) else t.shape
        q = t.quantization
        scale = zero = None
        if q is not None and q.scale is not None and len(q.scale) == 1:  # per-tensor: what I/O uses
            scale, zero = float(q.scale[0]), int(q.zeroPoint[0])
        name = t.name.decode() if isinstance(t.name, bytes) else str(t.name)
        return TensorInfo(
            name,
            tensor_types.get(t.type, str(t.type)),
            tuple(int(d) for d in (shape if shape is not None else ())),
            scale,
            zero,
        )

    ops = []
    for index, op in enumerate(graph.operators or []):
        ops.append(
            OpInfo(
                index,
                op_names[op.opcodeIndex],
                tuple(tensor(i) for i in op.inputs if i >= 0),
                tuple(tensor(i) for i in op.outputs if i >= 0),
            )
        )
    return TFLiteFile(tuple(tensor(i) for i in graph.inputs), tuple(tensor(i) for i in graph.outputs), tuple(ops))


WEIGHTED_OPS = frozenset({"FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D"})


def fingerprint(weights) -> tuple:
    """A layout-independent identity for a weight array (a TFLite filter is its torch/ONNX weight, maybe
    transposed): its sorted shape and rounded first two moments."""
    import numpy as np

    w = np.asarray(weights, dtype=np.float64)
    return (tuple(sorted(w.shape)), round(float(w.sum()), 3), round(float((w * w).sum()), 3))


def layer_prints(model: Any, names: tuple[str, ...]) -> dict[str, tuple]:
    """The fingerprints of the named source layers' weights: how a .tflite's ops are found again as those layers."""
    from edgekit.sensitivity import layer_weights

    return {name: fingerprint(w) for name, w in layer_weights(model, names).items()}


def weighted_ops(data: bytes) -> dict[str, tuple]:
    """The float file's FULLY_CONNECTED/CONV ops: output tensor name -> fingerprint of its weights (the
    names TFLite's quantizer takes in `denylisted_nodes`)."""
    import numpy as np

    schema, model, graph = _unpack(data)
    op_names = _op_names(schema, model)
    found = {}
    for op in graph.operators or []:
        if op_names[op.opcodeIndex] not in WEIGHTED_OPS:
            continue
        w = graph.tensors[op.inputs[1]]
        raw = model.buffers[w.buffer].data
        if w.type != schema.TensorType.FLOAT32 or raw is None or not len(raw):
            continue
        values = np.frombuffer(bytes(bytearray(raw)), dtype=np.float32).reshape(tuple(w.shape))
        out = graph.tensors[op.outputs[0]].name
        found[out.decode() if isinstance(out, bytes) else str(out)] = fingerprint(values)
    return found


def gathers(data: bytes) -> dict[str, bool]:
    """The file's GATHER ops: output tensor name -> whether it looks up rows of a constant float table (an
    embedding, which int8 stores at a quarter of the size) rather than picking from computed values."""
    schema, model, graph = _unpack(data)
    op_names = _op_names(schema, model)
    found = {}
    for op in graph.operators or []:
        if op_names[op.opcodeIndex] != "GATHER":
            continue
        params = graph.tensors[op.inputs[0]]
        raw = model.buffers[params.buffer].data
        out = graph.tensors[op.outputs[0]].name
        constant = params.type == schema.TensorType.FLOAT32 and raw is not None and len(raw) > 0
        found[out.decode() if isinstance(out, bytes) else str(out)] = constant
    return found
