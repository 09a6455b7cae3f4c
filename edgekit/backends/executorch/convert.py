"""torch -> ExecuTorch program (.pte) lowered to the XNNPACK delegate; int8 through PT2E.

torch.export traces the module at the source's shapes with every dim fixed (batch 1: what an app
feeds); executorch-int8 annotates it with ExecuTorch's XNNPACKQuantizer, calibrates on --calib and
converts before lowering. The sidecar records which ops XNNPACK took and which stayed on ExecuTorch's
portable kernels.
"""

from __future__ import annotations

import operator
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from edgekit._lazy import require
from edgekit.backends.base import StepContext, StepNotes
from edgekit.backends.executorch.plan import ExecuTorchPlan
from edgekit.backends.pt2e import calibrate, capture, integer_scalar_ops
from edgekit.data import Dataset
from edgekit.errors import ConversionError, UsageError
from edgekit.quiet import quiet
from edgekit.sources.base import Model
from edgekit.sources.torch_source import example_args, is_prequantized, refuse_prequantized, torch_module


def _executorch():
    with quiet():  # torchao announces the CUDA kernels it cannot load on a CPU machine
        require("torchao", "Quantizing for ExecuTorch")
        exir = require("executorch.exir", "Exporting to ExecuTorch")
        partitioner = require("executorch.backends.xnnpack.partition.xnnpack_partitioner", "Exporting to ExecuTorch")
    return exir, partitioner.XnnpackPartitioner


def _source_module(torch, model: Model):
    if isinstance(model.obj, torch.jit.ScriptModule):
        raise UsageError(
            f"{model.source} is TorchScript, which torch.export (and so ExecuTorch) cannot read.",
            hint="Export from the Python model instead: a package.module:factory with --weights, "
            "or an ExportedProgram (.pt2).",
        )
    return torch_module(model.obj)


def _quantize_pt2e(
    torch, module, args, plan: ExecuTorchPlan, data: Dataset, names: list[str], keep_float: tuple[str, ...]
) -> tuple[object, dict]:
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.quantizer import get_module_name_filter

    per_channel = plan.per_channel_weights
    # linear and convolution ops, with the BatchNorm/ReLU fused into them: the layers the per-layer fallback
    # names, so keeping all of them float gives back the float model (add/mul/cat stay float)
    config = get_symmetric_quantization_config(is_per_channel=per_channel)
    linear = get_symmetric_quantization_config(is_per_channel=per_channel, is_dynamic=plan.dynamic_linear)
    quantizer = XNNPACKQuantizer()
    aten = torch.ops.aten
    quantizer.set_operator_type(aten.linear.default, linear)
    for op in (aten.conv1d.default, aten.conv2d.default, aten.convolution.default):
        quantizer.set_operator_type(op, config)
    if keep_float:  # layers the exporter's fallback (or --keep-float) leaves in float
        inside_kept = [get_module_name_filter(name) for name in keep_float]
        quantizer.set_filter_function(lambda node: not any(f(node) for f in inside_kept))
    graph_module = capture(torch, module, args, "the model").module()
    rewritten = integer_scalar_ops(torch, graph_module)
    converted = calibrate(
        torch, graph_module, quantizer, data, names,
        hint="The quantizer annotated an op it cannot observe in this model (seen on Hugging Face attention-mask "
        "code). Use executorch-fp32, or pytorch-mobile-int8 / onnx-int8 for int8.",
    )  # fmt: skip
    return converted, {
        "method": "PT2E (torchao prepare_pt2e/convert_pt2e)",
        "quantizer": "XNNPACKQuantizer",
        "per_channel_weights": per_channel,
        "linear_activations": "int8, range measured at run time" if plan.dynamic_linear else "int8, calibrated",
        "calibration_samples": len(data),
        "integer_scalar_ops_kept_integer": rewritten,
        "float_layers": list(keep_float),
    }


def _op_name(target) -> str:
    name = getattr(target, "__name__", None) or str(target)
    return name.split("::")[-1]


def delegation(edge_program) -> dict:
    """Which ops the XNNPACK delegate took (counted inside each lowered module) and which it left."""
    gm = edge_program.exported_program().graph_module
    delegated: Counter[str] = Counter()
    left: Counter[str] = Counter()
    for node in gm.graph.nodes:
        if node.op != "call_function" or node.target is operator.getitem or _op_name(node.target) == "alloc":
            continue
        if "call_delegate" in _op_name(node.target):
            lowered = getattr(gm, node.args[0].target)
            for inner in lowered.original_module.graph.nodes:
                if inner.op == "call_function" and inner.target is not operator.getitem:
                    delegated[_op_name(inner.target)] += 1
        else:
            left[_op_name(node.target)] += 1
    return {
        "backend": "XnnpackBackend",
        "delegated_ops": dict(sorted(delegated.items())),
        "non_delegated_ops": dict(sorted(left.items())),
        "delegated_nodes": sum(delegated.values()),
        "non_delegated_nodes": sum(left.values()),
    }


def _lower(exir, exported, XnnpackPartitioner) -> tuple[Any, str | None]:
    """Lower to XNNPACK in partitions as large as it takes; when grouping the supported ops would make a
    partition that depends on itself through an op XNNPACK leaves out (seen on DeBERTa's quantized attention),
    lower each op on its own instead: the same kernels, more delegate calls. Returns (edge program, why it
    went op by op, or None)."""
    try:
        return exir.to_edge_transform_and_lower(exported, partitioner=[XnnpackPartitioner()]), None
    except AssertionError as e:
        if "dependency cycles" not in str(e):
            raise
    edge = exir.to_edge_transform_and_lower(exported, partitioner=[XnnpackPartitioner(per_op_mode=True)])
    return edge, "grouped partitions formed a dependency cycle; every op lowered as its own partition"


def convert(ctx: StepContext) -> StepNotes:
    torch = require("torch", "Exporting to ExecuTorch")
    model = ctx.model
    args = tuple(a.contiguous() for a in example_args(model))  # canonical strides: ExecuTorch records dim order
    calibration = ctx.calibration if ctx.plan.quantize and not is_prequantized(model) else None
    built = build_program(torch, model, ctx.plan, args, calibration, ctx.keep_float)
    ctx.out.write_bytes(built.program.buffer)
    return StepNotes(built.notes, applied="static" if ctx.plan.quantize else "none")


@dataclass
class Built:
    program: Any  # the ExecutorchProgramManager (.buffer: the .pte bytes)
    notes: dict
    taps: list[Any]  # executorch.devtools TapSpecs: the program outputs after the model's own


def build_program(
    torch,
    model: Model,
    plan: ExecuTorchPlan,
    args: tuple,
    calibration: Dataset | None,
    keep_float: tuple[str, ...],
    tap: Callable[[Any], Collection[Any]] | None = None,
) -> Built:
    """The .pte the recipe makes from `model` at `args`' shapes. `tap`: given the ExportedProgram (quantized,
    not yet lowered), the graph nodes whose values become extra program outputs, which is how `edgekit diff`
    sees inside the XNNPACK delegate (ExecuTorch's intermediate_output_tap); the model's own outputs are
    unchanged."""
    exir, XnnpackPartitioner = _executorch()
    module = _source_module(torch, model)
    names = model.signature.input_names
    notes: dict = {"example_shapes": {n: list(a.shape) for n, a in zip(names, args)}}
    if is_prequantized(model):  # int8 ranges learned in quantization-aware training: lower them as they are
        if not plan.quantize:
            refuse_prequantized(model, "executorch-fp32")
        notes["quantization"] = {
            "method": "from quantization-aware training (edgekit compress qat)",
            "recalibrated": False,
        }
    elif plan.quantize:
        assert calibration is not None  # the target needs calibration: the exporter refuses without it
        module, notes["quantization"] = _quantize_pt2e(torch, module, args, plan, calibration, names, keep_float)
    exported = capture(torch, module, args, model.source)
    taps: list[Any] = []
    if tap is not None:
        with quiet():
            from executorch.devtools.intermediate_output_tap import FULL_TENSOR, tap_intermediate_outputs_

            chosen = set(tap(exported))
            rule = (lambda node: node in chosen, FULL_TENSOR)
            exported, taps = tap_intermediate_outputs_(exported, [rule], error_on_empty=False)
    try:
        with quiet():
            edge, per_op = _lower(exir, exported, XnnpackPartitioner)
            if taps:
                from executorch.devtools.intermediate_output_tap import strip_taps_

                strip_taps_(edge)
            program = edge.to_executorch()
    except Exception as e:
        raise ConversionError(f"ExecuTorch could not lower {model.source}: {' '.join(str(e).split())[:300]}") from None
    notes["delegation"] = delegation(edge)
    if per_op:
        notes["delegation"]["per_op_mode"] = per_op
    return Built(program, notes, list(taps))
