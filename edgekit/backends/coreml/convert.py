"""torch -> Core ML package (.mlpackage, an ML program): the module traced with example inputs from its signature,
converted by coremltools (with edgekit's fills for two gaps of its TorchScript frontend, torch_ops.py) and saved
without loading it (Core ML itself, which loads and predicts, is macOS-only)."""

from __future__ import annotations

import re
import warnings
from typing import Any

import numpy as np

from edgekit.backends.base import StepContext, StepNotes
from edgekit.backends.coreml.options import CoreMLOptions
from edgekit.backends.coreml.program import facts, load_spec, signature
from edgekit.backends.coreml.stack import coremltools, deployment_target
from edgekit.backends.coreml.torch_ops import register as fill_torch_gaps
from edgekit.backends.coreml.worker_loader import META_COMPUTE_UNITS, UNITS
from edgekit.errors import ConversionError, UnsupportedOpError, UsageError, first_line
from edgekit.quiet import quiet

TOOL = "coremltools.convert (mlprogram)"
_MISSING_OP = re.compile(r"convert function for op '([^']+)' not implemented")


def compute_precision(quantization: str, options: CoreMLOptions, target: str) -> str:
    """float32 or float16 for this target: its own for coreml-fp32/-fp16, float16 unless asked for the others."""
    own = {"none": "float32", "fp16": "float16"}.get(quantization)
    chosen = options.compute_precision
    if own is not None and chosen not in ("auto", own):
        raise UsageError(
            f"{target} computes in {own}; --compute-precision {chosen} applies to the compressed targets only.",
            hint="Use coreml-fp32 or coreml-fp16 for the precision you want, or coreml-int8 / coreml-palettized "
            "with --compute-precision.",
        )
    return own or ("float16" if chosen == "auto" else chosen)


def convert(ctx: StepContext) -> StepNotes:
    from edgekit.sources.torch_source import example_args, output_names, refuse_prequantized, torch_module

    ct = coremltools("Converting to Core ML")
    options = ctx.options
    assert isinstance(options, CoreMLOptions)  # the registry resolved this backend's own model
    model = ctx.model
    refuse_prequantized(model, "a Core ML export")
    target = deployment_target(ct, options.deployment_target)
    precision = compute_precision(ctx.recipe.quantization, options, ctx.recipe.target)
    args = example_args(model)
    names = output_names(model, args)
    program, how = _traced(model, torch_module(model.obj), args)
    fill_torch_gaps()
    inputs = [
        ct.TensorType(name=s.name, shape=_shape(ct, s.shape, options.max_dynamic_size), dtype=_dtype(s.dtype))
        for s in model.signature.inputs
    ]
    try:
        with warnings.catch_warnings(), quiet():
            warnings.simplefilter("ignore")
            mlmodel = ct.convert(
                program,
                inputs=inputs,
                outputs=[ct.TensorType(name=n, dtype=np.float32) for n in names],  # float32 out, as in
                convert_to="mlprogram",
                minimum_deployment_target=target,
                compute_precision=getattr(ct.precision, precision.upper()),
                compute_units=getattr(ct.ComputeUnit, UNITS[options.compute_units]),
                skip_model_load=True,
            )
    except NotImplementedError as e:
        missing = _MISSING_OP.search(str(e))
        if missing:
            raise UnsupportedOpError(
                f"coremltools {ct.__version__} cannot convert {model.source}: it has no conversion for the "
                f"PyTorch op '{missing[1]}'.",
                hint="Replace the op in the source (or register a composite op with coremltools' "
                "register_torch_op), or export to a runtime that has it (edgekit targets).",
            ) from None
        raise ConversionError(f"coremltools cannot convert {model.source}: {first_line(e, 400)}") from None
    except Exception as e:  # coremltools raises ValueError, RuntimeError, AssertionError... for what it cannot map
        raise ConversionError(f"coremltools cannot convert {model.source}: {first_line(e, 400)}") from None
    mlmodel.user_defined_metadata[META_COMPUTE_UNITS] = options.compute_units
    mlmodel.short_description = f"{model.name} exported by edgekit ({ctx.recipe.target})"
    with quiet():
        mlmodel.save(str(ctx.out))
    return StepNotes(
        {**how, **check_saved(ctx), "compute_units": options.compute_units},
        applied="fp16" if ctx.recipe.quantization == "fp16" else None,
    )


def check_saved(ctx: StepContext) -> dict[str, Any]:
    """The package read back from disk: its facts, and its inputs and outputs against the source's names (what
    is checked on a machine that cannot run it)."""
    spec = load_spec(ctx.out)
    found = signature(spec, ctx.model.signature)
    want_in = ctx.model.signature.input_names
    want_out = [o.name for o in ctx.model.signature.outputs]
    got_in, got_out = [s.name for s in found.inputs], [s.name for s in found.outputs]
    if got_in != want_in or (want_out and got_out != want_out):
        raise ConversionError(
            f"The saved Core ML package's tensors differ from the source's: inputs {got_in} (source {want_in}), "
            f"outputs {got_out} (source {want_out or 'unnamed'})."
        )
    return {**facts(spec), "read_back": "inputs and outputs match the source by name"}


def _traced(model: Any, module: Any, args: tuple) -> tuple[Any, dict[str, str]]:
    """What coremltools converts: a TorchScript source as it is, any other module traced on the example inputs."""
    import torch

    if model.kind == "torchscript":
        return module, {"torchscript": "as loaded"}
    try:
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")
            return torch.jit.trace(module, args, strict=False, check_trace=False), {"torchscript": "trace"}
    except Exception as e:
        raise ConversionError(
            f"torch.jit.trace could not trace {model.source} for coremltools: {first_line(e)}",
            hint="Data-dependent control flow cannot be traced: make it tensor operations, or fix the input shape "
            "with --input.",
        ) from None


def _shape(ct: Any, dims: tuple, largest: int) -> tuple:
    """A dynamic dim becomes a flexible range (1 to `largest`, 1 by default); a static one stays as it is."""
    return tuple(
        ct.RangeDim(lower_bound=1, upper_bound=largest, default=1) if isinstance(d, str) else int(d) for d in dims
    )


def _dtype(dtype: str) -> Any:
    """Core ML takes float16/32 and int32 inputs: int64 (token ids) is fed as int32, bool as int32."""
    return {"float16": np.float16, "float32": np.float32, "int32": np.int32}.get(
        dtype, np.float32 if "float" in dtype else np.int32
    )
