"""Load an ONNX file as a source model; its graph carries the signature."""

from __future__ import annotations

from pathlib import Path

from edgekit.errors import ModelLoadError, UsageError, first_line
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


def onnx_opset(model) -> int:
    """The opset of the model's standard (ai.onnx) domain; 0 when it imports none."""
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def onnx_signature(model) -> Signature:
    initializers = {i.name for i in model.graph.initializer}
    inputs = tuple(value_info_spec(v) for v in model.graph.input if v.name not in initializers)
    return Signature(inputs, tuple(value_info_spec(v) for v in model.graph.output))


def load_onnx(path: Path, inputs: tuple[TensorSpec, ...] = ()) -> Model:
    """An ONNX file as a source; --input specs fix the dims the graph leaves free (converters that need
    static shapes then use them) and must agree with the graph on everything else."""
    import onnx

    try:
        proto = onnx.load(str(path))
        onnx.checker.check_model(proto)
    except Exception as e:  # onnx raises DecodeError, ValidationError, OSError...
        raise ModelLoadError(
            f"{path} is not a valid ONNX model: {first_line(e)}",
            hint="Check that the file is complete (not truncated) and was saved by an ONNX exporter.",
        ) from None
    signature = onnx_signature(proto)
    if inputs:
        signature = Signature(_given(signature.inputs, inputs, path), signature.outputs)
    return Model("onnx", "onnx", str(path), proto, signature, sha256_path(path), path.stem)


def _given(graph: tuple[TensorSpec, ...], given: tuple[TensorSpec, ...], path: Path) -> tuple[TensorSpec, ...]:
    """The graph's inputs with the free dims --input fixes; a spec naming no input, or of another dtype or
    rank, or contradicting a fixed dim, is refused naming the graph's own input."""
    by_name = {s.name: s for s in graph}
    for spec in given:
        own = by_name.get(spec.name)
        if own is None:
            raise UsageError(
                f"--input {spec}: {path.name} has no input '{spec.name}'.",
                hint=f"Its inputs: {', '.join(str(s) for s in graph)}.",
            )
        fits = len(own.shape) == len(spec.shape) and all(
            isinstance(d, str) or d == g for d, g in zip(own.shape, spec.shape)
        )
        if own.dtype != spec.dtype or not fits:
            raise UsageError(f"--input {spec} does not fit {path.name}, whose input is {own}.")
        by_name[spec.name] = TensorSpec(own.name, own.dtype, spec.shape)
    return tuple(by_name[s.name] for s in graph)
