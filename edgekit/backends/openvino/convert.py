"""Sources -> OpenVINO IR with openvino.convert_model: a torch module (traced on example inputs), an ONNX
file, a Keras model (its traced tf.function). Inputs and outputs keep the source's names and free dims; the
IR's rt_info records the OpenVINO device and float precision the runner compiles it for."""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

from edgekit.backends.base import StepContext, StepNotes
from edgekit.backends.openvino.stack import import_stack
from edgekit.backends.openvino.worker_loader import RT_INFO
from edgekit.errors import ConversionError, UnsupportedOpError, first_line
from edgekit.quiet import quiet
from edgekit.sources.base import Model


def from_torch(ctx: StepContext) -> StepNotes:
    from edgekit.sources.torch_source import example_args, output_names, refuse_prequantized, torch_module

    model = ctx.model
    refuse_prequantized(model, "an OpenVINO IR")
    args = example_args(model)  # positional, as the ONNX exporter passes them
    module = torch_module(model.obj)
    converted = _convert(ctx, lambda ov: ov.convert_model(module, example_input=args, input=_input_shapes(model)))
    _name(converted, model, output_names(model, args))
    return _save(converted, ctx, "openvino.convert_model (PyTorch frontend, traced)")


def from_onnx(ctx: StepContext) -> StepNotes:
    src = ctx.src
    if src is None:  # an ONNX source: the loaded model, written into the staging folder for the frontend
        import onnx

        src = ctx.out.with_name(f"{ctx.out.stem}-source.onnx")
        onnx.save(ctx.model.obj, str(src))
    converted = _convert(ctx, lambda ov: ov.convert_model(str(src)), onnx_file=src)
    return _save(converted, ctx, "openvino.convert_model (ONNX frontend)")


def from_keras(ctx: StepContext) -> StepNotes:
    model = ctx.model
    names = [o.name for o in model.signature.outputs]
    concrete = _dict_outputs(model.obj, names).get_concrete_function()
    converted = _convert(ctx, lambda ov: _in_order(ov, ov.convert_model(concrete), names))
    _name(converted, model, names)
    return _save(converted, ctx, "openvino.convert_model (TensorFlow frontend)")


def _dict_outputs(fn: Any, names: list[str]) -> Any:
    """The loader's tf.function (fixed input signature, a list of outputs) returning a dict by output name: from
    a list the TensorFlow frontend leaves the NHWC<->NCHW Transposes around every layer (46 in EfficientNetB0,
    1 from a dict), and NNCF then moved per-channel activation quantizers across them onto the wrong axis
    (OpenVINO refused the file: 'FakeQuantize ... non per-tensor quantization for axis: 2')."""
    import tensorflow as tf

    @tf.function(input_signature=fn.input_signature)
    def named(*args: Any) -> dict[str, Any]:
        return dict(zip(names, fn(*args)))

    return named


def _in_order(ov: Any, converted: Any, names: list[str]) -> Any:
    """The IR with its outputs in the signature's order (the frontend sorts a dict's outputs by key)."""
    results = {name: r for r in converted.get_results() for name in r.output(0).get_names()}
    if not all(name in results for name in names):
        return converted
    return ov.Model([results[name] for name in names], converted.get_parameters(), converted.get_friendly_name())


def _input_shapes(model: Model) -> list[Any]:
    """The signature's shapes for convert_model (-1 where a dim is free), in the module's argument order."""
    ov = import_stack("openvino", "OpenVINO conversion")
    return [ov.PartialShape([d if isinstance(d, int) else -1 for d in s.shape]) for s in model.signature.inputs]


def _convert(ctx: StepContext, call, onnx_file: Path | None = None) -> Any:
    ov = import_stack("openvino", f"Exporting to {ctx.recipe.target}")
    try:
        with warnings.catch_warnings(), quiet():
            warnings.simplefilter("ignore")
            return call(ov)
    except Exception as e:  # OpConversionFailure, GeneralFailure, the frontends' own errors
        unsupported = unsupported_ops(str(e))
        if unsupported:
            nodes = _onnx_nodes(onnx_file, unsupported) if onnx_file else []
            raise UnsupportedOpError(
                f"OpenVINO cannot convert {ctx.model.source}: no conversion rule for "
                + ", ".join(unsupported)
                + (f" (node {', '.join(nodes)})" if nodes else "")
                + ".",
                hint="Replace the op in the source, or export to a runtime that has it (edgekit targets).",
            ) from None
        raise ConversionError(f"openvino.convert_model failed for {ctx.model.source}: {first_line(e, 400)}") from None


def unsupported_ops(message: str) -> list[str]:
    """The ops an OpenVINO conversion error lists as unconvertible (`custom.x.Opaque`, `aten::foo`)."""
    found: list[str] = []
    for pattern in (
        r"No conversion rule found for operations?:\s*(.+)",  # PyTorch and TensorFlow frontends
        r"OpenVINO does not support the following ONNX operations?:\s*(.+)",  # ONNX frontend
    ):
        for match in re.finditer(pattern, message):
            found += [op.strip(" .") for op in match.group(1).split(",") if op.strip(" .")]
    return list(dict.fromkeys(found))


def _onnx_nodes(onnx_file: Path, ops: list[str]) -> list[str]:
    """The ONNX nodes of the ops OpenVINO named (`domain.Op`, or `Op` in the default domain)."""
    import onnx

    graph = onnx.load(str(onnx_file), load_external_data=False).graph
    return [
        node.name or node.output[0]
        for node in graph.node
        if (f"{node.domain}.{node.op_type}" if node.domain else node.op_type) in ops
    ]


def _name(converted: Any, model: Model, outputs: list[str]) -> None:
    """The source's input and output names on the IR's tensors (traced graphs come out unnamed)."""
    for port, spec in zip(converted.inputs, model.signature.inputs):
        port.get_tensor().set_names({spec.name})
    for port, name in zip(converted.outputs, outputs):
        port.get_tensor().set_names({name})


def _save(converted: Any, ctx: StepContext, tool: str, compress_to_fp16: bool = False) -> StepNotes:
    save(converted, ctx.out, ctx.plan, compress_to_fp16)
    return StepNotes({"method": tool, "openvino_device": ctx.plan.device_name})


def save(converted: Any, out: Path, plan, compress_to_fp16: bool = False) -> None:
    """Write the IR pair (out and its .bin) with the device and float precision in its rt_info."""
    ov = import_stack("openvino", "Writing an OpenVINO IR")
    converted.set_rt_info(plan.device_name, [RT_INFO, "device"])
    if plan.inference_precision:
        converted.set_rt_info(plan.inference_precision, [RT_INFO, "inference_precision"])
    ov.save_model(converted, str(out), compress_to_fp16=compress_to_fp16)
