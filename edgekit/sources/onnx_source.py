"""Load an ONNX file as a source model; its graph carries the signature."""

from __future__ import annotations

from pathlib import Path

from edgekit.errors import ModelLoadError, first_line
from edgekit.sources.base import Model, sha256_path
from edgekit.spec import Signature, TensorSpec

_ONNX_DTYPES = {
    1: "float32",
    10: "float16",
    11: "float64",
    7: "int64",
    6: "int32",
    5: "int16",
    3: "int8",
    2: "uint8",
    9: "bool",
}


def value_info_spec(value) -> TensorSpec:
    """TensorSpec of an ONNX ValueInfoProto (dim_param names a dynamic axis)."""
    ttype = value.type.tensor_type
    dims = []
    for i, d in enumerate(ttype.shape.dim):
        if d.HasField("dim_value") and d.dim_value > 0:
            dims.append(d.dim_value)
        else:
            dims.append(d.dim_param or f"{value.name}_dim{i}")
    return TensorSpec(value.name, _ONNX_DTYPES.get(ttype.elem_type, f"onnx:{ttype.elem_type}"), tuple(dims))


def onnx_signature(model) -> Signature:
    initializers = {i.name for i in model.graph.initializer}
    inputs = tuple(value_info_spec(v) for v in model.graph.input if v.name not in initializers)
    return Signature(inputs, tuple(value_info_spec(v) for v in model.graph.output))


def load_onnx(path: Path) -> Model:
    import onnx

    try:
        proto = onnx.load(str(path))
        onnx.checker.check_model(proto)
    except Exception as e:  # onnx raises DecodeError, ValidationError, OSError...
        raise ModelLoadError(
            f"{path} is not a valid ONNX model: {first_line(e)}",
            hint="Check that the file is complete (not truncated) and was saved by an ONNX exporter.",
        ) from None
    return Model("onnx", "onnx", str(path), proto, onnx_signature(proto), sha256_path(path), path.stem)
