"""Two gaps of coremltools 9.0's TorchScript frontend that Hugging Face BERT models (transformers 5) fall into,
filled before converting:

- `aten::Int`, `aten::Bool`, `aten::Float` of a one-element constant (a traced `int(seq_length)`): coremltools
  calls `int()` on the 1-element array, which NumPy 2.4 refuses ("only 0-dimensional arrays can be converted to
  Python scalars"; apple/coremltools#2633, fixed after 9.0). Such a constant becomes a scalar constant here; any
  other input goes to coremltools' own converter.
- `aten::new_ones`, which coremltools 9.0 has no conversion for (transformers' attention masks start from
  `q_idx.new_ones((), dtype=torch.bool)`); registered only where coremltools lacks it.

Registration is global to the process and done once; a coremltools that has new_ones keeps its own (the scalar
fill only answers what coremltools 9.0 would refuse and hands everything else to coremltools' converter)."""

from __future__ import annotations

from typing import Any

import numpy as np

_MARK = "_edgekit_shim"
_SCALARS = {"int": int, "bool": bool, "float": float}


def register() -> None:
    """Fill the gaps in coremltools' torch op registry (idempotent; nothing where its registry has moved)."""
    try:
        from coremltools.converters.mil.frontend.torch.torch_op_registry import (
            _TORCH_OPS_REGISTRY,
            register_torch_op,
        )
    except ImportError:
        return

    for name, kind in _SCALARS.items():
        own = _TORCH_OPS_REGISTRY.get_func(name)
        if own is not None and not getattr(own, _MARK, False):
            register_torch_op(_scalar_of(name, kind, own), override=True)
    if _TORCH_OPS_REGISTRY.get_func("new_ones") is None:
        register_torch_op(new_ones)  # keyed by the function name


def _scalar_of(name: str, kind: type, own: Any) -> Any:
    """A converter for aten::<name> that folds a one-element constant itself and leaves the rest to `own`."""
    from coremltools.converters.mil import Builder as mb

    def convert(context: Any, node: Any) -> None:
        held = context[node.inputs[0]] if len(node.inputs) == 1 else None
        value = held.val if held is not None and hasattr(held, "can_be_folded_to_const") else None
        if isinstance(value, np.ndarray) and value.ndim > 0 and value.size == 1:
            context.add(mb.const(val=kind(value.reshape(()).item()), name=node.name), node.name)
        else:
            own(context, node)

    convert.__name__ = name  # the registry keys a converter by its function's name
    setattr(convert, _MARK, True)
    return convert


def new_ones(context: Any, node: Any) -> None:
    """tensor.new_ones(size, dtype, ...): ones of `size` in `dtype` (the source tensor's dtype when none is given;
    64-bit types as Core ML's 32-bit ones); a constant when the size is known at conversion."""
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.frontend.torch.ops import _get_inputs
    from coremltools.converters.mil.frontend.torch.utils import NUM_TO_NUMPY_DTYPE
    from coremltools.converters.mil.mil import types

    inputs = _get_inputs(context, node, min_expected=2)
    source, size = inputs[0], inputs[1]
    dtype_var = inputs[2] if len(inputs) > 2 else None
    if dtype_var is not None and dtype_var.val is not None:
        dtype = np.dtype(NUM_TO_NUMPY_DTYPE[int(dtype_var.val)])
    else:
        dtype = np.dtype(types.nptype_from_builtin(source.dtype))
    dtype = {np.dtype(np.int64): np.dtype(np.int32), np.dtype(np.float64): np.dtype(np.float32)}.get(dtype, dtype)
    if isinstance(size, list):
        size = mb.concat(values=size, axis=0)
    if size.val is not None:
        result = mb.const(val=np.ones(tuple(int(d) for d in np.asarray(size.val).reshape(-1)), dtype=dtype),
                          name=node.name)  # fmt: skip
    else:
        filled = mb.fill(shape=size, value=np.float32(1.0))
        result = mb.cast(x=filled, dtype=types.builtin_to_string(types.numpy_type_to_builtin_type(dtype.type)),
                         name=node.name)  # fmt: skip
    context.add(result, node.name)
