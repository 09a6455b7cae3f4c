"""ONNX Runtime's symbolic shape inference, kept from writing into the user's folder."""

from __future__ import annotations

import os
import tempfile
from typing import Any


def symbolic_shapes(model: Any, guess_output_rank: bool = True) -> Any:
    """Every tensor's type and shape written out (it follows the Shape/Reshape arithmetic of exported transformers
    and knows the contrib ops); raises when it cannot finish. It runs in a scratch folder: on failure ONNX Runtime
    saves the half-typed model, with its weights as external data, into the current directory."""
    from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

    here = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="edgekit-shapes-") as scratch:
        os.chdir(scratch)
        try:
            return SymbolicShapeInference.infer_shapes(model, auto_merge=True, guess_output_rank=guess_output_rank)
        finally:
            os.chdir(here)
