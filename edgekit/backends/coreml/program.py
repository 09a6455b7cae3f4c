"""What a saved .mlpackage says about itself, read from its spec without Core ML (so on any OS): its inputs and
outputs, ops, compute precision, deployment target and how its weights are stored."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

from edgekit.backends.coreml.stack import coremltools
from edgekit.backends.coreml.worker_loader import ARRAY_TYPES
from edgekit.errors import ModelLoadError, first_line
from edgekit.spec import Signature, TensorSpec

# constexpr ops that expand stored weights when the model loads, and the argument that holds the stored values
_COMPRESSED = {
    "constexpr_lut_to_dense": "indices",
    "constexpr_affine_dequantize": "quantized_data",
    "constexpr_blockwise_shift_scale": "data",
    "constexpr_sparse_to_dense": "nonzero_data",
}
_WIDTH = {"INT8": 8, "UINT8": 8, "INT4": 4, "UINT4": 4, "UINT6": 6, "UINT3": 3, "UINT2": 2, "UINT1": 1}


def load_spec(path: Path) -> Any:
    """The package's protobuf spec (Model), or a ModelLoadError naming what is wrong with the folder."""
    ct = coremltools("Reading a Core ML package")
    if not (path / "Manifest.json").is_file():
        raise ModelLoadError(f"{path} is not a Core ML package: it has no Manifest.json.")
    try:
        return ct.utils.load_spec(str(path))
    except Exception as e:  # a truncated or scrambled model.mlmodel: protobuf's own words
        raise ModelLoadError(f"coremltools cannot read {path}: {first_line(e)}") from None


def signature(spec: Any, source: Signature | None = None) -> Signature:
    """The package's inputs and outputs; a flexible dim takes the source's name for it, outputs the source's
    shapes (an ML program's outputs declare none)."""
    declared = {s.name: s for s in (source.inputs + source.outputs if source else ())}
    inputs = tuple(_tensor(f, declared.get(f.name), True) for f in spec.description.input)
    outputs = tuple(_tensor(f, declared.get(f.name), False) for f in spec.description.output)
    return Signature(inputs, outputs)


def _tensor(feature: Any, source: TensorSpec | None, is_input: bool) -> TensorSpec:
    array = feature.type.multiArrayType
    dtype = ARRAY_TYPES.get(array.dataType, "float32")
    if source is not None and dtype == "int32" and source.dtype == "int64":
        dtype = "int64"  # Core ML has no int64: the source's int64 is fed as int32, the runner casts it
    ranges = list(array.shapeRange.sizeRanges)
    if ranges:
        dims: list[int | str] = []
        for i, r in enumerate(ranges):
            free = r.lowerBound != r.upperBound
            named = source.shape[i] if source is not None and i < len(source.shape) else None
            dims.append((named if isinstance(named, str) else f"dim{i}") if free else int(r.lowerBound))
        shape: tuple[int | str, ...] = tuple(dims)
    elif array.shape:
        shape = tuple(int(d) for d in array.shape)
    else:
        shape = source.shape if source is not None else ()
    if not is_input and source is not None and source.shape:
        shape = source.shape
    role = source.role if source is not None else None
    return TensorSpec(feature.name, dtype, shape, role=role)


def facts(spec: Any) -> dict[str, Any]:
    """The saved program's facts for the sidecar: spec version and the OS releases it needs, ops by type, the
    precision its float ops compute in, and its weights by storage (float, int8, n-bit lookup table)."""
    ct = coremltools("Reading a Core ML package")
    version = int(spec.specificationVersion)
    members = ct.target.__members__
    oldest = {prefix: next((n for n, m in members.items() if n.startswith(prefix) and m == version), None)
              for prefix in ("iOS", "macOS")}  # fmt: skip
    out: dict[str, Any] = {
        "specification_version": version,
        "deployment_target": {k: v for k, v in oldest.items() if v},
        "model_type": spec.WhichOneof("Type"),
    }
    if spec.WhichOneof("Type") != "mlProgram":
        return out
    ops = [op for function in spec.mlProgram.functions.values() for op in _operations(function)]
    out["opset"] = sorted({f.opset for f in spec.mlProgram.functions.values()})
    out["ops"] = dict(sorted(Counter(op.type for op in ops).items()))
    out["compute_precision"] = _precision(ops)
    out["weights"] = _weights(ops)
    return out


def _operations(function: Any) -> list[Any]:
    """Every op of a function's block for its opset, nested blocks (loops, conditions) included."""
    pending, found = [function.block_specializations[function.opset]], []
    while pending:
        block = pending.pop()
        for op in block.operations:
            found.append(op)
            pending.extend(op.blocks)
    return found


def _dtype_name(value_type: Any) -> str:
    from coremltools.proto import MIL_pb2

    return MIL_pb2.DataType.Name(value_type.tensorType.dataType)


def _precision(ops: list[Any]) -> str:
    """float16, float32 or mixed: the types the compute ops (not constants or casts) produce."""
    kinds = {
        _dtype_name(o.type)
        for op in ops
        if op.type not in ("const", "cast") and not op.type.startswith("constexpr_")
        for o in op.outputs
        if o.type.WhichOneof("type") == "tensorType"
    } & {"FLOAT16", "FLOAT32"}
    return {frozenset({"FLOAT16"}): "float16", frozenset({"FLOAT32"}): "float32"}.get(frozenset(kinds), "mixed")


def _weights(ops: list[Any]) -> dict[str, Any]:
    """Weights by how they are stored: float consts (by dtype), and each kind of compressed weight with its bits."""
    types = {o.name: o.type for op in ops for o in op.outputs}  # a const's value type, by the name ops use
    stored: Counter[str] = Counter()
    elements: Counter[str] = Counter()
    for op in ops:
        if op.type == "const" and "val" in op.attributes:
            value = op.attributes["val"]
            if value.type.WhichOneof("type") == "tensorType" and value.WhichOneof("value") == "blobFileValue":
                kind = f"float:{_dtype_name(value.type).lower()}"
                stored[kind] += 1
                elements[kind] += _size(value.type)
        elif op.type in _COMPRESSED:
            kind = f"{op.type}:{_bits(op, types)}"
            stored[kind] += 1
            elements[kind] += sum(_size(o.type) for o in op.outputs)
    out: dict[str, Any] = {}
    for kind, count in sorted(stored.items()):
        how, _, detail = kind.partition(":")
        name = {
            "float": detail,
            "constexpr_lut_to_dense": f"palettized_{detail}bit",
            "constexpr_sparse_to_dense": "sparse",
        }.get(how, f"int{detail}" if detail.isdigit() else detail)
        out[name] = {"tensors": count, "elements": elements[kind], "op": how if how != "float" else "const"}
    return out


def _argument(op: Any, key: str, types: dict[str, Any]) -> Any:
    """An op's argument's value type: an attribute (iOS16 constexpr ops) or an input naming a const (iOS18)."""
    if key in op.attributes:
        return op.attributes[key].type
    if key in op.inputs and op.inputs[key].arguments:
        return types.get(op.inputs[key].arguments[0].name)
    return None


def _bits(op: Any, types: dict[str, Any]) -> str:
    """The stored bits of a compressed weight: the lookup table's length (2^bits), else the data's width."""
    if op.type == "constexpr_lut_to_dense":
        lut = _argument(op, "lut", types)
        dims = [d.constant.size for d in lut.tensorType.dimensions] if lut is not None else []
        entries = dims[0] if len(dims) == 1 else dims[-2] if len(dims) >= 2 else 0
        return str(int(math.log2(entries))) if entries > 0 else "unknown"
    data = _argument(op, _COMPRESSED[op.type], types)
    if data is None:
        return "unknown"
    name = _dtype_name(data)
    return str(_WIDTH[name]) if name in _WIDTH else name.lower()


def _size(value_type: Any) -> int:
    dims = [d.constant.size for d in value_type.tensorType.dimensions]
    return math.prod(dims) if dims else 1
