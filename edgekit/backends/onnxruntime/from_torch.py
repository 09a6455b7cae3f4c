"""torch -> ONNX: the dynamo exporter (one file, no external data), falling back to the TorchScript exporter."""

from __future__ import annotations

import contextlib
import logging
import warnings
from typing import Any

from edgekit.backends.base import StepContext, StepNotes
from edgekit.backends.onnxruntime.fuse import export_patch
from edgekit.errors import ConversionError, first_line
from edgekit.quiet import quiet
from edgekit.sources.base import Model
from edgekit.sources.torch_source import example_args, output_names, refuse_prequantized

OPSET = 20  # 20: GELU is one Gelu op, which onnx2tf maps to the TFLite GELU builtin (18 spells it with Erf)


def target_opset(ctx: StepContext) -> int:
    """OPSET, or older where the target's runtime parses no newer (TensorRT 8.5 on JetPack 5: 17)."""
    newest = getattr(ctx.plan, "max_opset", None)
    return min(OPSET, newest) if newest else OPSET


def _dynamic_axes(model: Model, outputs: list[str]) -> dict:
    axes = {s.name: dict(s.dynamic_axes) for s in model.signature.inputs if s.dynamic_axes}
    batch_dynamic = any(s.shape and isinstance(s.shape[0], str) for s in model.signature.inputs)
    if batch_dynamic:
        for name in outputs:
            axes[name] = {0: "batch"}
    return axes


def convert(ctx: StepContext) -> StepNotes:
    import torch

    model = ctx.model
    refuse_prequantized(model, "an ONNX export")
    for name in ("torch.onnx", "torch.fx", "torch._dynamo", "torch.export"):  # exporter chatter, not errors
        logging.getLogger(name).setLevel(logging.ERROR)
    args = example_args(model)
    names = output_names(model, args)
    dynamic_axes = _dynamic_axes(model, names)
    scripted = isinstance(model.obj, torch.jit.ScriptModule)
    opset = target_opset(ctx)
    # the graph the fusion expects, when the target's backend fuses (other backends' options have no fuse)
    for_fusion = bool(getattr(ctx.options, "fuse", False)) and not scripted
    errors: list[str] = []
    for dynamo in [False] if scripted else [True, False]:
        try:
            patch: Any = export_patch(model.obj) if for_fusion else contextlib.nullcontext([])
            with warnings.catch_warnings(), quiet(), patch as patched:
                warnings.simplefilter("ignore")
                kwargs: dict[str, Any] = dict(
                    input_names=model.signature.input_names,
                    output_names=names,
                    opset_version=opset,
                    dynamic_axes=dynamic_axes or None,
                    dynamo=dynamo,
                )
                if dynamo:
                    kwargs["external_data"] = False
                torch.onnx.export(model.obj, args, str(ctx.out), **kwargs)
            return StepNotes(
                {
                    "exporter": "dynamo" if dynamo else "torchscript",
                    "opset": opset,
                    "fallback_reasons": errors,
                    **({"exported_for_fusion": patched} if patched else {}),
                }
            )
        except Exception as e:  # the exporters raise many types; keep the first line of each
            errors.append(f"{'dynamo' if dynamo else 'torchscript'} exporter: {first_line(e)}")
    raise ConversionError(f"torch.onnx.export failed for {model.source}.", hint="\n".join(errors))
