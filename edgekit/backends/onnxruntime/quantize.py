"""ONNX Runtime quantization: fp16, dynamic int8 and static QDQ int8, driven by the backend's OrtPlan."""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.backends.base import NON_LAYER_OPS, StepContext, StepNotes
from edgekit.backends.onnxruntime.plan import OrtPlan
from edgekit.data import Dataset
from edgekit.errors import ConversionError, MissingDependencyError, first_line
from edgekit.sensitivity import converted_ops, keras_scoped, onnx_layers, symmetric_int8
from edgekit.sources.base import Model


def op_types(path: Path) -> Counter:
    import onnx

    return Counter(n.op_type for n in onnx.load(str(path), load_external_data=False).graph.node)


def _constants(graph) -> set[str]:
    """Tensor names that are weights: initializers and Constant outputs."""
    return {i.name for i in graph.initializer} | {o for n in graph.node if n.op_type == "Constant" for o in n.output}


def _split(present: Counter, wanted: tuple[str, ...]) -> tuple[list[str], list[str]]:
    quantized = sorted(op for op in present if op in wanted)
    return quantized, sorted(op for op in present if op not in wanted)


_INTEGER_OPS = {
    "MatMulInteger",
    "ConvInteger",
    "DynamicQuantizeMatMul",
    "QLinearConv",
    "QLinearMatMul",
    "QGemm",
    "QAttention",
    "DynamicQuantizeLSTM",
}


def quantized_ops(path: Path, requested: tuple[str, ...]) -> dict[str, int]:
    """What the written file runs in int8: integer ops, and requested ops whose data input is dequantized (QDQ)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    producer = {out: node.op_type for node in graph.node for out in node.output}
    found: Counter = Counter()
    for node in graph.node:
        if node.op_type in _INTEGER_OPS or (
            node.op_type in requested and node.input and producer.get(node.input[0]) == "DequantizeLinear"
        ):
            found[node.op_type] += 1
    return dict(sorted(found.items()))


def gemm_to_matmul(model) -> int:
    """Rewrite plain Gemm (alpha=beta=1, constant B) as MatMul + Add, in place.

    ONNX Runtime's dynamic quantizer has no Gemm kernel, and torch exports every 2-D Linear
    as Gemm: without this, dynamic int8 would leave Linear layers in float.
    """
    import numpy as np
    from onnx import helper, numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    rewritten, nodes = 0, []
    for node in model.graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        plain = (
            node.op_type == "Gemm"
            and attrs.get("alpha", 1.0) == 1.0
            and attrs.get("beta", 1.0) == 1.0
            and not attrs.get("transA", 0)
            and len(node.input) >= 2
            and node.input[1] in inits
        )
        if not plain:
            nodes.append(node)
            continue
        weight = numpy_helper.to_array(inits[node.input[1]])
        if attrs.get("transB", 0):
            weight = np.ascontiguousarray(weight.T)
        w_name = f"{node.input[1]}_matmul"
        model.graph.initializer.append(numpy_helper.from_array(weight, w_name))
        has_bias = len(node.input) > 2 and node.input[2]
        mm_out = f"{node.output[0]}_matmul" if has_bias else node.output[0]
        replacement = [helper.make_node("MatMul", [node.input[0], w_name], [mm_out], name=f"{node.name}_matmul")]
        if has_bias:
            replacement.append(
                helper.make_node("Add", [mm_out, node.input[2]], [node.output[0]], name=f"{node.name}_bias")
            )
        for new in replacement:  # keep the torch module scope: the per-layer fallback finds layers by it
            new.metadata_props.extend(node.metadata_props)
        nodes.extend(replacement)
        rewritten += 1
    if rewritten:
        replace_nodes(model.graph, nodes)
    return rewritten


def replace_nodes(graph, nodes: list) -> None:
    """Give `graph` these nodes, in this order, and drop the initializers no node reads any more."""
    del graph.node[:]
    graph.node.extend(nodes)
    used = {i for n in graph.node for i in n.input}
    kept = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)


def layer_nodes(model, layers: tuple[str, ...], source: Model | None = None) -> list[str]:
    """The ONNX nodes that compute `layers`: nodes of that name, (torch exports) nodes whose recorded module
    scope (`pkg.torch.onnx.name_scopes`) is the layer or inside it, (tf2onnx exports of Keras models) nodes
    whose name or weight sits in the layer's scope (`model/block_1_expand_1/convolution/merged_input`), else
    the weighted node at the layer's place among the source's layers (tf2onnx renames what it folds)."""
    if not layers:
        return []
    keras = source is not None and source.format == "keras"  # `_1` ends another node's name in other files
    scoped = [
        (node, next((p.value for p in node.metadata_props if p.key == "pkg.torch.onnx.name_scopes"), ""))
        for node in model.graph.node
    ]

    def named(layer: str) -> list[str]:
        return [
            node.name
            for node, scopes in scoped
            if node.name == layer
            or f"'{layer}'" in scopes
            or (keras and any(keras_scoped(name, (layer,)) for name in (node.name, *node.input[1:2])))
        ]

    inits = {i.name: len(i.dims) for i in model.graph.initializer}
    weighted = [(n.name, inits[n.input[1]]) for n in onnx_layers(model.graph)]
    return converted_ops(layers, weighted, named, source)


def kept_float_nodes(model, ctx: StepContext, op_types: list[str]) -> tuple[list[str], dict[str, int]]:
    """The nodes the fallback keeps float: its layers' and, with the non-layer group, every node of `op_types`
    without a weight matrix as its second input (pooling, activations, an embedding Gather; not a fused
    Attention, whose weights are the layers'), with their count per op type for the record."""
    nodes = layer_nodes(model, tuple(k for k in ctx.keep_float if k != NON_LAYER_OPS), ctx.model)
    if NON_LAYER_OPS not in ctx.keep_float:
        return nodes, {}
    ranks = {i.name: len(i.dims) for i in model.graph.initializer}
    others = [
        n
        for n in model.graph.node
        if n.op_type in op_types and n.name not in nodes and not (len(n.input) > 1 and ranks.get(n.input[1], 0) >= 2)
    ]
    return nodes + [n.name for n in others], dict(sorted(Counter(n.op_type for n in others).items()))


def to_fp16(ctx: StepContext) -> StepNotes:
    """fp16 weights and compute, float32 I/O (onnxruntime.transformers.float16 keeps transformer graphs valid)."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(ctx.src_file))
    with contextlib.redirect_stdout(io.StringIO()):
        converted = convert_float_to_float16(model, keep_io_types=True, disable_shape_infer=False)
    onnx.save(converted, str(ctx.out))
    return StepNotes({"method": "onnxruntime.transformers.float16", "keep_io_types": True}, applied="fp16")


def _quant_types(plan: OrtPlan):
    from onnxruntime.quantization import QuantType

    to_type = {"int8": QuantType.QInt8, "uint8": QuantType.QUInt8}
    return to_type[plan.activation_type], to_type[plan.weight_type]


def dynamic_int8(ctx: StepContext) -> StepNotes:
    """int8 weights; activations quantized at run time, only on the device's dynamic_ops."""
    import onnx
    from onnxruntime.quantization import quantize_dynamic

    plan: OrtPlan = ctx.plan
    src, dst = ctx.src_file, ctx.out
    model = onnx.load(str(src))
    rewritten = gemm_to_matmul(model) if "MatMul" in plan.int8_ops else 0
    prepared = dst.with_name("prepared-" + dst.name)
    onnx.save(model, str(prepared))
    present = op_types(prepared)
    wanted, kept = _split(present, plan.int8_ops)
    _, weight_type = _quant_types(plan)
    batched = batched_weight_products(model)
    kept_nodes, non_layer = kept_float_nodes(model, ctx, wanted)
    _quiet()
    try:
        if wanted:
            quantize_dynamic(
                str(prepared),
                str(dst),
                weight_type=weight_type,
                per_channel=plan.per_channel,
                reduce_range=plan.reduce_range,
                op_types_to_quantize=wanted,
                nodes_to_exclude=kept_nodes + batched,
            )
    except Exception as e:
        raise ConversionError(f"ONNX Runtime dynamic quantization failed: {first_line(e, 400)}") from None
    finally:
        prepared.unlink()
    done = quantized_ops(dst, plan.int8_ops) if dst.exists() else {}
    if not done and not (ctx.keep_float and dst.exists()):  # the fallback may keep everything float
        dst.unlink(missing_ok=True)
        raise ConversionError(
            f"Dynamic int8 quantized nothing on {plan.device}: the model has none of {', '.join(plan.int8_ops)}.",
            hint=f"Its ops: {', '.join(sorted(present))}. Use onnx-int8 (static, calibrated) or onnx-fp16.",
        )
    return StepNotes(
        {
            "method": "onnxruntime.quantization.quantize_dynamic",
            "gemm_rewritten_as_matmul": rewritten,
            "quantized_ops": done,
            "float_op_types": kept,
            **({"float_non_layer_ops": non_layer} if non_layer else {}),
            **({"float_batched_matmuls": batched} if batched else {}),
            "activations": "uint8, quantized at run time",
            "weights": f"{plan.weight_type} per_channel={plan.per_channel}",
            "reduce_range": plan.reduce_range,
        },
        applied="dynamic",
    )


def int8_weights_only(path: Path, nodes: list[str]) -> int:
    """Give the float MatMul/Gemm `nodes` of a quantized file int8 weights (symmetric, per output channel)
    behind a DequantizeLinear, in place: their activations stay float, their weights take a quarter of the
    space. What the fallback keeps "float" in a static file. Returns how many weights it converted."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    wanted, done, new_nodes = set(nodes), 0, []
    for node in graph.node:
        if node.name in wanted and node.op_type in ("MatMul", "Gemm") and node.input[1] in inits:
            w = numpy_helper.to_array(inits[node.input[1]])
            trans_b = node.op_type == "Gemm" and any(a.name == "transB" and a.i for a in node.attribute)
            axis = 0 if trans_b else w.ndim - 1  # the output channels
            if w.dtype == np.float32 and w.ndim == 2:
                q, scale = symmetric_int8(w, axis)
                base = f"{node.input[1]}_int8w"
                graph.initializer.extend(
                    [
                        numpy_helper.from_array(q, base),
                        numpy_helper.from_array(scale, base + "_scale"),
                        numpy_helper.from_array(np.zeros_like(q, shape=scale.shape), base + "_zero"),
                    ]
                )
                new_nodes.append(
                    helper.make_node(
                        "DequantizeLinear", [base, base + "_scale", base + "_zero"], [base + "_dq"], axis=axis
                    )
                )
                node.input[1] = base + "_dq"
                done += 1
        new_nodes.append(node)
    if done:
        replace_nodes(graph, new_nodes)
        onnx.save(model, str(path))
    return done


def batched_weight_products(model) -> list[str]:
    """MatMul nodes whose constant B is not a matrix (DeBERTa's relative-position keys, folded to 3-D): ONNX
    Runtime's integer MatMul kernel (dynamic int8, and static int8 with float outputs) rejects their
    per-channel zero points at run time."""
    from onnx import numpy_helper

    ranks = {i.name: len(i.dims) for i in model.graph.initializer}
    for n in model.graph.node:
        if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value":
            ranks[n.output[0]] = numpy_helper.to_array(n.attribute[0].t).ndim
    return [n.name for n in model.graph.node if n.op_type == "MatMul" and ranks.get(n.input[1], 2) != 2]


def activation_products(model) -> list[str]:
    """MatMul nodes multiplying two activations (attention scores and context): no weight to quantize,
    and quantizing them would wrap the Softmax between them in Q/DQ."""
    constants = _constants(model.graph)
    return [n.name for n in model.graph.node if n.op_type == "MatMul" and not any(i in constants for i in n.input)]


class _Reader:
    """CalibrationDataReader over a Dataset, one batch per call."""

    def __init__(self, data: Dataset, batch_size: int) -> None:
        self.batches = iter(list(data.batches(batch_size)))

    def get_next(self):
        return next(self.batches, None)


def static_int8(ctx: StepContext) -> StepNotes:
    """Static QDQ int8 calibrated on `data`; ops outside the device's int8 list stay float."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, quantize_static
    from onnxruntime.quantization.calibrate import save_tensors_data
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from edgekit.backends.onnxruntime.ranges import mse_ranges

    plan: OrtPlan = ctx.plan
    dst, data, batch_size = ctx.out, ctx.calibration, ctx.batch_size
    method = getattr(ctx.options, "calibration", "minmax")
    src, smoothing = _smoothed(ctx)
    float_model = onnx.load(str(src))
    quantized, kept = _split(Counter(n.op_type for n in float_model.graph.node), plan.int8_ops)
    act_type, weight_type = _quant_types(plan)
    _quiet()
    kept_nodes, non_layer = kept_float_nodes(float_model, ctx, quantized)
    products = [] if plan.quantize_activation_products else activation_products(float_model)
    batched = batched_weight_products(float_model)  # as in dynamic int8: the integer kernel rejects them
    settings = {
        "quant_format": QuantFormat.QDQ,
        "activation_type": act_type,
        "weight_type": weight_type,
        "per_channel": plan.per_channel,
        "reduce_range": plan.reduce_range,
        "op_types_to_quantize": quantized,
        "calibrate_method": getattr(CalibrationMethod, _CALIBRATION[method]),
        "nodes_to_exclude": kept_nodes + products + batched,
        "extra_options": {
            "ActivationSymmetric": plan.activation_symmetric,
            "WeightSymmetric": plan.weight_symmetric,
            **dict(plan.extra_options),
        },
    }
    # ONNX Runtime's pre-processing optimizes the graph first (MatMul + Add -> Gemm, BatchNorm folded); on some
    # fixed-shape encoders the file quantized from that graph with float layer outputs does not load ("Attempt
    # to replace the existing tensor", ONNX Runtime 1.32): then the graph is quantized unoptimized
    unloadable = ctx.out.parent / f"preprocessed-unloadable-{_attempts_key(ctx, src)}"
    for optimize in (False,) if unloadable.exists() else (True, False):
        ranges = _ranges_cache(ctx, src, quantized, optimize, method)
        reused = ranges.is_file()
        with tempfile.TemporaryDirectory() as tmp:
            prepared = Path(tmp) / "prepared.onnx"
            try:
                quant_pre_process(str(src), str(prepared), skip_optimization=not optimize, skip_symbolic_shape=True)
            except Exception:  # pre-processing is an optimization; quantize the original when it fails
                prepared = Path(src)
            # on the graph quantize_static rounds (batch norms folded)
            prepared, rounding, correction = _weights_prepared(prepared, Path(tmp), ctx, set(kept_nodes), optimize)
            try:
                with contextlib.redirect_stdout(io.StringIO()):  # the histogram calibrators print their settings
                    if method == "mse" and not ranges.is_file():  # quantize_static reads them from its cache
                        save_tensors_data(mse_ranges(prepared, _Reader(data, batch_size), quantized, Path(tmp)), ranges)
                    quantize_static(str(prepared), str(dst), _Reader(data, batch_size), calibration_cache_path=ranges,
                                    **settings)  # fmt: skip
            except Exception as e:
                raise ConversionError(f"ONNX Runtime static quantization failed: {first_line(e, 400)}") from None
        if not optimize or _loads(dst):
            break
        unloadable.touch()
    weights_only = int8_weights_only(dst, kept_nodes) if plan.kept_weights_int8 else 0
    rewritten = _integer_encoder(dst)
    return StepNotes(
        {
            "method": "onnxruntime.quantization.quantize_static",
            "format": "QDQ",
            "calibration": method,
            "smoothing": smoothing,
            "adaround": rounding,
            "bias_correction": correction,
            **({"integer_ops": rewritten} if rewritten else {}),
            "float_output_ops": dict(plan.extra_options).get("OpTypesToExcludeOutputQuantization", []),
            "calibration_samples": len(data),
            "calibration_ranges": "reused" if reused else "measured",
            "graph_optimized_first": optimize,
            "quantized_ops": quantized_ops(dst, plan.int8_ops),
            "float_op_types": kept,
            "float_nodes_kept": len(kept_nodes),
            **({"float_non_layer_ops": non_layer} if non_layer else {}),
            "kept_nodes_int8_weights": weights_only,
            "float_nodes_activation_products": len(products),
            **({"float_batched_matmuls": batched} if batched else {}),
            "activations": f"{plan.activation_type} symmetric={plan.activation_symmetric}",
            "weights": f"{plan.weight_type} symmetric={plan.weight_symmetric} per_channel={plan.per_channel}",
            "reduce_range": plan.reduce_range,
            **({"extra_options": {k: v for k, v in plan.extra_options}} if plan.extra_options else {}),
        },
        applied="static",
    )


# ONNX Runtime's names; mse's ranges are edgekit's (ranges.py), handed over as a MinMax calibration cache
_CALIBRATION = {"minmax": "MinMax", "percentile": "Percentile", "mse": "MinMax"}


def _integer_encoder(path: Path) -> dict[str, int]:
    """A fused encoder's quantized attention and biased projections rewritten as ONNX Runtime's integer ops
    (int8_encoder.py); the counts of what was written."""
    import onnx

    from edgekit.backends.onnxruntime.int8_encoder import rewrite_int8_encoder

    model = onnx.load(str(path))
    if not any(n.op_type == "MultiHeadAttention" for n in model.graph.node):
        return {}
    counts = rewrite_int8_encoder(model)
    if counts:
        onnx.save(model, str(path))
    return counts


def _loads(path: Path) -> bool:
    """Whether ONNX Runtime builds a session for the file with its default graph optimizations."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 4
    try:
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception:
        return False
    return True


def _ranges_cache(ctx: StepContext, src: Path, op_types: list[str], optimized: bool, method: str) -> Path:
    """Where this export keeps the activation ranges calibration measured (ONNX Runtime's calibration cache),
    beside the attempts in its staging folder: the fallback's attempts differ only in the nodes they leave
    float, which calibration does not see, so the first attempt measures and the others reuse (on MiniLM each
    calibration ran the 200 samples through a graph with every activation as an output)."""
    return ctx.out.parent / f"calibration-ranges-{_attempts_key(ctx, src, op_types, optimized, method)}.json"


def _attempts_key(ctx: StepContext, src: Path, *more: object) -> str:
    """What the fallback's attempts of one export share: the file, the calibration data and the plan."""
    stat, data = src.stat(), ctx.calibration
    key = repr((str(src), stat.st_size, stat.st_mtime_ns, data.sha256, len(data), ctx.batch_size, ctx.plan, more))
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _weights_prepared(
    prepared: Path, tmp: Path, ctx: StepContext, kept: set[str], optimized: bool
) -> tuple[Path, dict | str, dict | str]:
    """The graph to quantize with its weights' rounding learned (--adaround) or its Conv and Gemm biases
    corrected for it (--bias-correction), the layers kept float left alone; with what each did, for the
    sidecar. A method whose calibration run fails leaves the graph as it was (static quantization then says
    why)."""
    import onnx

    from edgekit.backends.onnxruntime.bias_correction import WeightGrid, correct_biases

    adaround, bias_correction = getattr(ctx.options, "adaround", False), getattr(ctx.options, "bias_correction", False)
    rounding: dict | str = "off (--adaround not given)"
    correction: dict | str = "off (--bias-correction not given)"
    if not adaround and not bias_correction:
        return prepared, rounding, correction
    plan: OrtPlan = ctx.plan
    model = onnx.load(str(prepared))
    grid = WeightGrid(qmax=plan.weight_qmax, per_channel=plan.per_channel)
    if adaround:
        rounding = _learn_rounding(model, ctx, grid, kept, optimized)
        if bias_correction:  # the learned rounding leaves no error of its own to correct
            correction = "off: --adaround fits each layer's output on the calibration data, its mean included"
    elif bias_correction:
        try:
            correction = correct_biases(model, ctx.calibration, ctx.batch_size, grid, kept)
        except Exception as e:
            correction = {"method": "bias correction", "skipped": first_line(e, 200)}
    changed = tmp / "weights-prepared.onnx"
    onnx.save(model, str(changed), save_as_external_data=model.ByteSize() > 1_500_000_000)
    return changed, rounding, correction


def _learn_rounding(model: Any, ctx: StepContext, grid: Any, kept: set[str], optimized: bool) -> dict:
    """AdaRound on `model` in place, its learned weights kept beside the fallback's attempts (which differ only
    in the layers they keep float: each layer learns once per export)."""
    from edgekit.backends.onnxruntime.adaround import AdaRoundSettings, adaround

    memo_path = ctx.out.parent / f"adaround-{_attempts_key(ctx, ctx.src_file, optimized)}.npz"
    memo: dict[str, tuple[np.ndarray, float]] = {}
    if memo_path.is_file():
        with np.load(memo_path) as saved:
            memo = {str(name): (saved[f"w{i}"], float(saved["ratios"][i])) for i, name in enumerate(saved["names"])}
    try:
        notes = adaround(model, ctx.calibration, ctx.batch_size, grid, kept, AdaRoundSettings(), memo)
    except MissingDependencyError:  # the user asked for it: say what to install
        raise
    except Exception as e:
        return {"method": "AdaRound", "skipped": first_line(e, 200)}
    arrays: dict[str, Any] = {f"w{i}": value for i, (value, _) in enumerate(memo.values())}
    arrays.update(names=np.array(list(memo)), ratios=np.array([ratio for _, ratio in memo.values()]))
    np.savez(memo_path, **arrays)
    return notes


def _smoothed(ctx: StepContext) -> tuple[Path, dict | str]:
    """The float file to quantize: the source with its activations smoothed (made once per export, like the
    ranges, since smoothing is exact in float and does not depend on the layers kept float), or the source."""
    import json

    import onnx

    from edgekit.backends.onnxruntime.smooth import Int8Grid, smooth

    plan: OrtPlan = ctx.plan
    if not plan.smooth_activations:
        return ctx.src_file, f"off: not measured for {plan.target}"
    if not getattr(ctx.options, "smooth", True):
        return ctx.src_file, "off (--no-smooth)"
    path = ctx.out.parent / f"smoothed-{_attempts_key(ctx, ctx.src_file)}.onnx"
    notes_path = path.with_suffix(".json")
    if path.is_file() and notes_path.is_file():
        return path, {**json.loads(notes_path.read_text()), "reused": True}
    model = onnx.load(str(ctx.src_file))
    grid = Int8Grid(plan.activation_symmetric, plan.weight_qmax)
    try:
        notes = smooth(model, ctx.calibration, ctx.batch_size, grid)
    except Exception as e:  # the calibration run failed: static quantization will say why in its own words
        return ctx.src_file, {"method": "SmoothQuant", "skipped": first_line(e, 200)}
    onnx.save(model, str(path), save_as_external_data=model.ByteSize() > 1_500_000_000)
    notes_path.write_text(json.dumps(notes))
    return path, notes


def _quiet() -> None:
    logging.getLogger().setLevel(logging.ERROR)
