"""TensorRT precisions on the portable ONNX: fp16 is a builder flag (the file stays float32), int8 is explicit
quantization (Q/DQ pairs with zero points of 0) written by ONNX Runtime's QDQ quantizer.

Why not NVIDIA's Model Optimizer (modelopt.onnx.quantization, the field's tool for TensorRT PTQ): its ONNX
extra installs onnxruntime-gpu 1.24 and an older onnx over the pinned onnxruntime 1.32 / onnx 1.23, so it
cannot live in edgekit's environment. ONNX Runtime's quantizer writes the same layout when told to:
symmetric int8 activations and per-channel weights, Q/DQ only on the inputs of weighted ops, float bias.
"""

from __future__ import annotations

from dataclasses import replace

from edgekit.backends.base import StepContext, StepNotes
from edgekit.backends.onnxruntime.runner import EXACT_QDQ
from edgekit.backends.tensorrt.plan import TrtPlan
from edgekit.backends.tensorrt.prepare import check_parser_support
from edgekit.errors import ConversionError


def fp16(ctx: StepContext) -> StepNotes:
    """float16 weights and compute in the ONNX itself (float32 I/O): TensorRT 11 builds every network strongly
    typed, from these types; TensorRT 10 gets BuilderFlag.FP16 too. Parity here then checks fp16 arithmetic."""
    from edgekit.backends.onnxruntime.quantize import to_fp16

    plan: TrtPlan = ctx.plan
    notes = to_fp16(ctx)
    notes.details["builder_flags"] = list(plan.builder_flags)
    return notes


def qdq_problems(model) -> list[str]:
    """What TensorRT would refuse in a QDQ graph: a non-zero zero point, or a per-tensor weight scale."""
    from onnx import numpy_helper

    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    problems = []
    for node in model.graph.node:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear") or len(node.input) < 3:
            continue
        zero = inits.get(node.input[2])
        if zero is not None and zero.any():
            problems.append(f"{node.name}: zero point {zero.ravel()[:4].tolist()} (TensorRT needs 0)")
    return problems


def int8(ctx: StepContext) -> StepNotes:
    import onnx

    from edgekit.backends.onnxruntime.quantize import static_int8

    plan: TrtPlan = ctx.plan
    assert plan.ort is not None
    notes = static_int8(replace(ctx, plan=plan.ort))
    model = onnx.load(str(ctx.out))
    onnx.helper.set_model_props(model, {EXACT_QDQ: "1"})  # TensorRT's int8 arithmetic: see EXACT_QDQ
    onnx.save(model, str(ctx.out))
    check_parser_support(model, plan)
    problems = qdq_problems(model)
    if problems:
        raise ConversionError(f"The QDQ graph is not one TensorRT reads: {'; '.join(problems[:5])}")
    notes.details.update(
        {
            "builder_flags": list(plan.builder_flags),
            "qdq_pairs": sum(n.op_type == "QuantizeLinear" for n in model.graph.node),
            "placement": "inputs of " + ", ".join(plan.ort.int8_ops) + " (TensorRT fuses DQ into the layer)",
            "why_not_modelopt": "nvidia-modelopt[onnx] installs onnxruntime-gpu and an older onnx over the pinned "
            "stack; ONNX Runtime's QDQ quantizer is set up to write TensorRT's layout instead",
        }
    )
    return notes
