"""ONNX Runtime's symbolic shape inference, taught the integer op edgekit writes, and kept from writing files."""

from __future__ import annotations

from typing import Any


def symbolic_shapes(model: Any, guess_output_rank: bool = True) -> Any:
    """Every tensor's type and shape written out (it follows the Shape/Reshape arithmetic of exported transformers
    and knows the contrib ops); raises when it cannot finish. Run step by step as its `infer_shapes` runs it, with
    `MatMulIntegerToFloat` added (static int8 encoders have it: int8_encoder.py; the Python inference of ONNX
    Runtime 1.32 does not list it) and without `infer_shapes`' save of the half-typed model into the current
    directory on failure."""
    import onnx
    from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

    class WithIntegerMatMul(SymbolicShapeInference):
        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            self.dispatcher_["MatMulIntegerToFloat"] = lambda node: self._compute_matmul_shape(
                node, onnx.TensorProto.FLOAT
            )

    inference = WithIntegerMatMul(2**31 - 1, True, guess_output_rank, 0)  # int_max, auto_merge, ..., verbose
    inference._preprocess(model)
    complete = False
    while inference.run_:
        complete = inference._infer_impl()
    inference._update_output_from_vi()
    if not complete:
        raise ValueError("incomplete symbolic shape inference")
    return inference.out_mp_
