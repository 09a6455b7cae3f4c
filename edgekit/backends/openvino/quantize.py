"""Quantizers on the float IR: fp16 weights (OpenVINO's compress_to_fp16), int8 post-training quantization
(nncf.quantize, calibrated on --calib) and int8 weight-only compression (nncf.compress_weights). Layers the
per-layer fallback keeps float become NNCF's ignored scope."""

from __future__ import annotations

import re
from typing import Any

from edgekit.backends.base import NON_LAYER_OPS, StepContext, StepNotes
from edgekit.backends.openvino.convert import save
from edgekit.backends.openvino.stack import import_stack
from edgekit.errors import ConversionError, first_line
from edgekit.quiet import quiet
from edgekit.sources.base import Model

_NNCF_DEVICES = {"CPU": "CPU", "GPU": "GPU", "NPU": "NPU"}


def fp16(ctx: StepContext) -> StepNotes:
    save(_read(ctx), ctx.out, ctx.plan, compress_to_fp16=True)
    return StepNotes({"method": "openvino.save_model(compress_to_fp16=True)"}, applied="fp16")


def int8(ctx: StepContext) -> StepNotes:
    nncf = import_stack("nncf", f"Exporting to {ctx.recipe.target}")
    plan, data = ctx.plan, ctx.calibration
    model = _read(ctx)
    transformer = is_transformer(model)
    layers = tuple(k for k in ctx.keep_float if k != NON_LAYER_OPS)
    ignored = ignored_ops(model, layers, ctx.model)
    non_layer = non_layer_ops(model) if NON_LAYER_OPS in ctx.keep_float else {}
    ignored += [name for names in non_layer.values() for name in names]
    feeds = list(data.batches(ctx.batch_size))
    overflow = nncf.OverflowFix.ENABLE if plan.overflow_fix else nncf.OverflowFix.DISABLE
    # SmoothQuant (on by default in NNCF's transformer mode) moves activation outliers into the weights; on the
    # demo's MiniLM it cost 0.45 pt of macro-F1 on the test tweets (0.03 without), and a true outlier layer is
    # what the per-layer fallback keeps float: off
    advanced = nncf.AdvancedQuantizationParameters(
        overflow_fix=overflow, smooth_quant_alphas=nncf.AdvancedSmoothQuantParameters(matmul=-1, convolution=-1)
    )
    try:
        with quiet():
            quantized = nncf.quantize(
                model,
                nncf.Dataset(feeds),
                preset=getattr(nncf.QuantizationPreset, plan.preset),
                target_device=getattr(nncf.TargetDevice, _NNCF_DEVICES.get(plan.device_name.split(".")[0], "ANY")),
                subset_size=len(feeds),  # NNCF counts dataset items: batches
                model_type=nncf.ModelType.TRANSFORMER if transformer else None,
                ignored_scope=nncf.IgnoredScope(names=ignored, validate=False) if ignored else None,
                advanced_parameters=advanced,
            )
    except Exception as e:
        raise ConversionError(f"nncf.quantize failed for {ctx.recipe.target}: {first_line(e, 400)}") from None
    _refuse_unmeasured_ranges(ctx, quantized, feeds)
    save(quantized, ctx.out, plan)
    details: dict[str, Any] = {
        "method": "nncf.quantize",
        "preset": plan.preset.lower(),
        "model_type": "transformer" if transformer else "default",
        "overflow_fix": overflow.value,
        "smooth_quant": False,
        "calibration_samples": len(data),
        "quantized_ops": _count(quantized, "FakeQuantize"),
    }
    if ignored:
        details["kept_float_ops"] = ignored
    if non_layer:
        details["float_non_layer_ops"] = {kind: len(names) for kind, names in sorted(non_layer.items())}
    return StepNotes(details, applied="static")


def weight_only(ctx: StepContext) -> StepNotes:
    nncf = import_stack("nncf", f"Exporting to {ctx.recipe.target}")
    model = _read(ctx)
    ignored = ignored_ops(model, ctx.keep_float, ctx.model)
    try:
        with quiet():
            compressed = nncf.compress_weights(
                model,
                mode=getattr(nncf.CompressWeightsMode, ctx.plan.weights_mode),
                ignored_scope=nncf.IgnoredScope(names=ignored, validate=False) if ignored else None,
            )
    except Exception as e:
        raise ConversionError(f"nncf.compress_weights failed for {ctx.recipe.target}: {first_line(e, 400)}") from None
    save(compressed, ctx.out, ctx.plan)
    details: dict[str, Any] = {"method": "nncf.compress_weights", "mode": ctx.plan.weights_mode.lower()}
    if ignored:
        details["kept_float_ops"] = ignored
    return StepNotes(details, applied="weight-only")


def _refuse_unmeasured_ranges(ctx: StepContext, quantized: Any, feeds: list[dict[str, Any]]) -> None:
    """An activation that is NaN or infinite somewhere on the calibration data (ModernBERT's IR from PyTorch
    computes NaN in the padded rows of its attention, which the classifier never reads) leaves NNCF an empty
    range: the int8 IR then outputs zeros, and no layer kept float can change it. Refused naming those ops, so
    the exporter tries its next route at once."""
    import numpy as np

    empty = set()
    for op in quantized.get_ops():
        if op.get_type_name() != "FakeQuantize":
            continue
        low, high = (op.input_value(k).get_node() for k in (1, 2))
        constant = low.get_type_name() == high.get_type_name() == "Constant"
        if constant and np.array_equal(low.get_data(), high.get_data()):
            empty.add(op.input_value(0).get_node().get_friendly_name())
    if not empty:
        return
    ov = import_stack("openvino", f"Exporting to {ctx.recipe.target}")
    model = _read(ctx)
    probes = [o for o in model.get_ops() if o.get_friendly_name() in empty]
    model.add_outputs([o.output(0) for o in probes])
    compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    ports = compiled.outputs[-len(probes) :]
    bad = set()
    for feed in feeds[:8]:
        values = compiled(feed)
        bad |= {op.get_friendly_name() for op, port in zip(probes, ports) if not np.isfinite(values[port]).all()}
    if bad:
        named = sorted(bad)
        raise ConversionError(
            f"nncf.quantize found no range for {len(named)} activation(s) that are NaN or infinite on the "
            f"calibration data in the float IR ({', '.join(named[:3])}{', ...' if len(named) > 3 else ''}): "
            "the int8 file would output zeros there.",
            hint="Another route to OpenVINO (through ONNX) may compute them finitely; onnx-int8 and "
            "executorch-int8 quantize this model too.",
        )


def _read(ctx: StepContext) -> Any:
    ov = import_stack("openvino", f"Exporting to {ctx.recipe.target}")
    return ov.Core().read_model(str(ctx.src_file))


def _count(model: Any, op_type: str) -> int:
    return sum(op.get_type_name() == op_type for op in model.get_ops())


def is_transformer(model: Any) -> bool:
    """Attention: OpenVINO's fused ScaledDotProductAttention (what the PyTorch frontend makes of torch's SDPA), or
    a Softmax and a MatMul of two activations. NNCF's transformer type keeps the attention products and Softmax
    float and smooths the outlier channels of transformer activations (the default type loses 0.17 in cosine on
    MiniLM)."""
    types = {op.get_type_name() for op in model.get_ops()}
    if "ScaledDotProductAttention" in types:
        return True
    if "Softmax" not in types:
        return False
    for op in model.get_ops():
        if op.get_type_name() == "MatMul":
            sources = [op.input_value(i).get_node() for i in range(2)]
            if all(_is_activation(s) for s in sources):
                return True
    return False


def _is_activation(node: Any) -> bool:
    """Not a constant, and not a constant behind a convert (fp16 weights, decompression)."""
    while node.get_type_name() in ("Convert", "Reshape", "Transpose") and node.get_input_size():
        node = node.input_value(0).get_node()
    return node.get_type_name() not in ("Constant",)


def ignored_ops(model: Any, layers: tuple[str, ...], source: Model | None = None) -> list[str]:
    """The IR's weighted ops (MatMul, Convolution...) that belong to the named source layers: by name (the PyTorch
    frontend names ops `__module.<path>/aten::...`, the ONNX frontend keeps node names, the TensorFlow frontend
    a Keras layer's scope), else by position among the source's layers of the same weight rank (a convolution
    folded with its batch norm loses its name)."""
    from edgekit.sensitivity import converted_ops, keras_scoped

    if not layers:
        return []
    weighted = [
        op
        for op in model.get_ordered_ops()
        if op.get_type_name() in _WEIGHTED and not _is_activation(op.input_value(1).get_node())
    ]
    keras = source is not None and source.format == "keras"  # `_1` ends another op's name in other files

    def named(layer: str) -> list[str]:
        pattern = re.compile(rf"^(__module\.)?{re.escape(layer)}(/|$)")
        return [
            op.get_friendly_name()
            for op in weighted
            if pattern.search(op.get_friendly_name()) or (keras and keras_scoped(op.get_friendly_name(), (layer,)))
        ]

    ranked = [(op.get_friendly_name(), _weight_rank(op)) for op in weighted]
    return converted_ops(layers, ranked, named, source)


_WEIGHTED = ("MatMul", "Convolution", "GroupConvolution", "ConvolutionBackpropData")
_NOT_COMPUTED = ("Parameter", "Result", "Constant", "Convert", "ShapeOf")


def non_layer_ops(model: Any) -> dict[str, list[str]]:
    """Every op NNCF may quantize that is not a weighted layer (element-wise ops, pooling, activations; a
    MatMul of two activations), by type: the fallback's non-layer group keeps them float. On EfficientNetB0 the
    squeeze-excitation Multiply and the residual Add alone cost 0.05 in cosine with every layer float."""
    found: dict[str, list[str]] = {}
    for op in model.get_ordered_ops():
        kind = op.get_type_name()
        if kind in _NOT_COMPUTED:
            continue
        if kind in _WEIGHTED and op.get_input_size() > 1 and not _is_activation(op.input_value(1).get_node()):
            continue
        found.setdefault(kind, []).append(op.get_friendly_name())
    return found


def _weight_rank(op: Any) -> int:
    """The rank its source layer's weight has: a GroupConvolution's weight has one more axis (the groups) than
    a depthwise layer's kernel in PyTorch or Keras."""
    shape = op.input_value(1).get_partial_shape()
    if not shape.rank.is_static:
        return -1
    return shape.rank.get_length() - (op.get_type_name() == "GroupConvolution")
