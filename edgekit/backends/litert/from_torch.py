"""torch -> .tflite with litert-torch: the PyTorch program lowered by torch.export, no ONNX in between.

Why a second route beside torch -> ONNX -> onnx2tf: onnx2tf guesses each tensor's layout from its shape,
and a transformer whose sequence length equals its hidden size (or head size) is guessed wrong, silently
(DistilBERT at 64 tokens and hidden size 64: parity cosine -0.22). litert-torch lowers the exported
program as it is, so no layout is guessed. Dynamic-range int8 (tflite-dynamic) is applied to the lowered file
by ai-edge-quantizer (int8 weights, the embedding tables too; float activations). The other quantized targets
take the ONNX route, whose TFLite converter calibrates, keeps layers float and makes int8 I/O: ai-edge-quantizer's
static int8 keeps float I/O and lost 5.6 points of accuracy on a fine-tuned DistilBERT where dynamic lost none.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

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
    details: dict[str, object] = {
        "converter": f"litert-torch {litert_torch.__version__}",
        "static_shapes": {s.name: list(s.shape) for s in model.signature.inputs},
    }
    applied = "none"
    if ctx.recipe.quantization == "dynamic":
        details["quantizer"] = _dynamic_int8(ctx.out)
        applied = "dynamic"
    details["op_types"] = read_tflite(ctx.out.read_bytes()).op_types()
    return StepNotes(details, applied=applied)


def _dynamic_int8(path: Path) -> str:
    """Rewrite the float .tflite at `path` with int8 weights and float activations; returns the tool's name."""
    require("ai_edge_quantizer", "Quantizing a litert-torch file")
    from ai_edge_quantizer import quantizer, recipe

    try:
        with quiet(), warnings.catch_warnings():  # its progress bars
            warnings.simplefilter("ignore")
            result = quantizer.Quantizer(str(path), recipe.dynamic_wi8_afp32()).quantize(
                enable_progress_bar=False, enable_progress_report=False
            )
    except Exception as e:  # the quantizer raises many types; the first line names the op or tensor
        raise ConversionError(f"ai-edge-quantizer could not quantize {path.name}: {first_line(e)}") from None
    path.write_bytes(result.quantized_model)
    return "ai-edge-quantizer dynamic_wi8_afp32"
