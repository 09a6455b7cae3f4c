"""ONNX -> TensorRT-ready ONNX: the opset the device's TensorRT parses, ops it parses (checked before any
build), constants folded and shapes inferred with Polygraphy, and the optimization profiles recorded."""

from __future__ import annotations

from collections import Counter

from edgekit._lazy import require
from edgekit.backends.base import StepContext, StepNotes
from edgekit.backends.tensorrt.plan import TrtPlan
from edgekit.backends.tensorrt.profiles import derive
from edgekit.errors import ConversionError, UnsupportedOpError, first_line
from edgekit.quiet import quiet
from edgekit.sources.onnx_source import onnx_opset

_STANDARD_DOMAINS = ("", "ai.onnx")


def check_parser_support(model, plan: TrtPlan) -> None:
    """Refuse ops the device's TensorRT parser has no importer for, naming each op type and its first node."""
    refused: dict[str, str] = {}
    for node in model.graph.node:
        custom = node.domain not in _STANDARD_DOMAINS
        if (custom or node.op_type in plan.parser.unsupported) and node.op_type not in refused:
            refused[node.op_type] = (node.name or "(unnamed)") + (f", domain {node.domain}" if custom else "")
    if refused:
        listed = "; ".join(f"{op} (node {where})" for op, where in sorted(refused.items()))
        raise UnsupportedOpError(
            f"TensorRT {plan.parser.version}'s ONNX parser on {plan.device} has no importer for: {listed}.",
            hint="Replace those ops in the model, or export for a runtime that has them (edgekit targets); "
            "ops outside the standard ONNX domain need a TensorRT plugin.",
        )


def _opset(model, plan: TrtPlan):
    """The model at an opset the parser reads: converted down when newer, refused when older than it reads."""
    import onnx

    have = onnx_opset(model)
    low, _ = plan.parser.opsets
    if have < low:
        raise UnsupportedOpError(
            f"The model uses ONNX opset {have}; TensorRT {plan.parser.version} reads opsets {low}-{plan.max_opset}.",
            hint="Export the model again with a newer opset.",
        )
    if have <= plan.max_opset:
        return model, have
    try:
        return onnx.version_converter.convert_version(model, plan.max_opset), have
    except Exception as e:
        raise ConversionError(
            f"Cannot rewrite the model from ONNX opset {have} to {plan.max_opset} "
            f"(the newest TensorRT {plan.parser.version} on {plan.device} parses): {first_line(e)}",
            hint="Export the source again at that opset, or pick a device profile with a newer TensorRT.",
        ) from None


def prepare(ctx: StepContext) -> StepNotes:
    onnx = require("onnx", "The TensorRT export")
    polygraphy = require(
        "polygraphy.backend.onnx", "The TensorRT export (constant folding, shape inference)", extra="tensorrt"
    )
    plan: TrtPlan = ctx.plan
    model = onnx.load(str(ctx.src)) if ctx.src is not None else ctx.model.obj
    model, opset_in = _opset(model, plan)
    check_parser_support(model, plan)
    before = len(model.graph.node)
    try:
        with quiet():  # Polygraphy logs each folding pass to stdout
            folded = polygraphy.fold_constants(model, num_passes=None, do_shape_inference=True, fold_shapes=True)
            folded = polygraphy.infer_shapes(folded)
    except Exception as e:
        raise ConversionError(f"Polygraphy could not fold constants in the model: {first_line(e)}") from None
    profiles = derive(ctx.model.signature.inputs, ctx.data, tuple(getattr(ctx.options, "profiles", ())))
    onnx.save(folded, str(ctx.out))
    opset = onnx_opset(folded)
    return StepNotes(
        {
            "method": "polygraphy fold_constants + infer_shapes",
            "opset": opset,
            **({"opset_converted_from": opset_in} if opset_in != opset else {}),
            "nodes_before": before,
            "nodes_after": len(folded.graph.node),
            "op_types": dict(sorted(Counter(n.op_type for n in folded.graph.node).items())),
            "parser": f"TensorRT {plan.parser.version} (opsets {plan.parser.opsets[0]}-{plan.parser.opsets[1]})",
            "profiles": {p.name: p.to_json() for p in profiles},
            "builder_flags": list(plan.builder_flags),
        }
    )
