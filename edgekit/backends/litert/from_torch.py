"""torch -> .tflite with litert-torch: the PyTorch program lowered by torch.export, no ONNX in between.

Why a second route beside torch -> ONNX -> onnx2tf: onnx2tf guesses each tensor's layout from its shape,
and a transformer whose sequence length equals its hidden size (or head size) is guessed wrong, silently
(DistilBERT at 64 tokens and hidden size 64: parity cosine -0.22). litert-torch lowers the exported
program as it is, so no layout is guessed. It converts float programs; quantized TFLite targets take the
ONNX route, whose TFLite converter calibrates and keeps layers float.
"""

from __future__ import annotations

import logging
import warnings

from edgekit._lazy import require
from edgekit.backends.base import StepContext, StepNotes
from edgekit.backends.litert.tflite_file import read_tflite
from edgekit.errors import ConversionError, first_line
from edgekit.quiet import quiet
from edgekit.sources.torch_source import example_args, refuse_prequantized, torch_module


def convert(ctx: StepContext) -> StepNotes:
    """Lower the source module at the export's fixed shapes and write the float .tflite."""
    torch = require("torch", "Converting PyTorch to TFLite")
    model = ctx.model
    refuse_prequantized(model, "a TFLite conversion")
    if isinstance(model.obj, torch.jit.ScriptModule):
        raise ConversionError(
            f"litert-torch lowers torch.export programs; {model.source} is TorchScript, which torch.export cannot read."
        )
    for name in ("torch.export", "torch._dynamo", "torch.fx", "absl"):
        logging.getLogger(name).setLevel(logging.ERROR)
    litert_torch = require("litert_torch", "Converting PyTorch to TFLite with litert-torch")
    args = example_args(model)
    try:
        with quiet(), warnings.catch_warnings():  # its progress lines and the int64 -> int32 I/O notice
            warnings.simplefilter("ignore")
            edge_model = litert_torch.convert(torch_module(model.obj).eval(), args)
            edge_model.export(str(ctx.out))
    except Exception as e:  # torch.export and the lowering raise many types; the first line names the op
        raise ConversionError(f"litert-torch could not convert {model.source}: {first_line(e)}") from None
    info = read_tflite(ctx.out.read_bytes())
    return StepNotes(
        {
            "converter": f"litert-torch {litert_torch.__version__}",
            "static_shapes": {s.name: list(s.shape) for s in model.signature.inputs},
            "op_types": info.op_types(),
        },
        applied="none",
    )
