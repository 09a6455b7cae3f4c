"""torch -> ONNX: the dynamo exporter (one file, no external data), falling back to the TorchScript exporter."""
from __future__ import annotations

import logging
import warnings
from pathlib import Path

from edgekit.errors import ConversionError, first_line
from edgekit.models.base import Model
from edgekit.quiet import quiet
from edgekit.spec import np_dtype

OPSET = 18


def example_args(model: Model):
    """Example tensors for tracing: dynamic dims get size 2 (size 1 would be specialized away)."""
    import torch

    args = []
    for spec in model.signature.inputs:
        shape = spec.concrete_shape(default=2)
        dtype = np_dtype(spec.dtype)
        if dtype.kind == "f":
            args.append(torch.randn(*shape, dtype=getattr(torch, spec.dtype)))
        elif "mask" in spec.name:
            args.append(torch.ones(*shape, dtype=getattr(torch, spec.dtype)))
        else:
            args.append(torch.zeros(*shape, dtype=getattr(torch, spec.dtype)))
    return tuple(args)


def _dynamic_axes(model: Model, outputs: list[str]) -> dict:
    axes = {s.name: dict(s.dynamic_axes) for s in model.signature.inputs if s.dynamic_axes}
    batch_dynamic = any(s.shape and isinstance(s.shape[0], str) for s in model.signature.inputs)
    if batch_dynamic:
        for name in outputs:
            axes[name] = {0: "batch"}
    return axes


def output_names(model: Model, args) -> list[str]:
    """The signature's output names, or output / output_i after one run of the module."""
    if model.signature.outputs:
        return [o.name for o in model.signature.outputs]
    import torch

    from edgekit.models.torch_source import torch_module
    from edgekit.runners.source import flatten_outputs

    with torch.inference_mode():
        n = len(flatten_outputs(torch_module(model.obj)(*args)))
    return ["output"] if n == 1 else [f"output_{i}" for i in range(n)]


def convert(model: Model, src: Path | None, out_path: Path, recipe=None, data=None) -> dict:
    import torch

    for name in ("torch.onnx", "torch.fx", "torch._dynamo", "torch.export"):  # exporter chatter, not errors
        logging.getLogger(name).setLevel(logging.ERROR)
    args = example_args(model)
    names = output_names(model, args)
    input_names = model.signature.input_names
    dynamic_axes = _dynamic_axes(model, names)
    scripted = isinstance(model.obj, torch.jit.ScriptModule)
    errors = []
    for dynamo in ([False] if scripted else [True, False]):
        try:
            with warnings.catch_warnings(), quiet():
                warnings.simplefilter("ignore")
                kwargs = dict(input_names=input_names, output_names=names, opset_version=OPSET,
                              dynamic_axes=dynamic_axes or None, dynamo=dynamo)
                if dynamo:
                    kwargs["external_data"] = False
                torch.onnx.export(model.obj, args, str(out_path), **kwargs)
            return {"exporter": "dynamo" if dynamo else "torchscript", "opset": OPSET, "fallback_reasons": errors}
        except Exception as e:  # the exporters raise many types; keep the first line of each
            errors.append(f"{'dynamo' if dynamo else 'torchscript'} exporter: {first_line(e)}")
    raise ConversionError(f"torch.onnx.export failed for {model.source}.", hint="\n".join(errors))

