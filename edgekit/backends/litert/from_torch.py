"""torch -> .tflite with litert-torch: the PyTorch program lowered by torch.export, no ONNX in between.

Why a second route beside torch -> ONNX -> onnx2tf: onnx2tf guesses each tensor's layout from its shape,
and a transformer whose sequence length equals its hidden size (or head size) is guessed wrong, silently
(DistilBERT at 64 tokens and hidden size 64: parity cosine -0.22). litert-torch lowers the exported
program as it is, so no layout is guessed. Dynamic-range int8 (tflite-dynamic) is applied to the lowered file
by ai-edge-quantizer (int8 weights, the embedding tables too; float activations): ai-edge-quantizer's static
int8 keeps float I/O and lost 5.6 points of accuracy on a fine-tuned DistilBERT where dynamic lost none.

tflite-int16x8 through this route is ai-edge-quantizer's static recipe on the lowered file, its linear ops only
(int16 activations, int8 weights): TFLite's converter cannot make it for transformers, whose integer token-id
inputs its 16x8 calibrator refuses.

tflite-int8 through this route is PT2E static int8 (litert-torch's PT2EQuantizer: the linear layers and the ops
between int8 ones, min/max ranges calibrated on --calib, after the exact rewrites of pt2e_prep), tried after the
ONNX route, whose file can be full integer: here LayerNorm, Softmax and GELU stay float, so it is the route for the
models onnx2tf converts wrong, and for those whose ONNX-route file passes only with those ops float too (the
sidecar says "(non-linear ops)" are float, like the ONNX route's fallback, and whether the I/O is integer).
"""

from __future__ import annotations

import copy
import logging
import warnings
from pathlib import Path
from typing import Any

from edgekit._lazy import require
from edgekit.backends.base import StepContext, StepNotes
from edgekit.backends.litert.plan import LOOKUPS, OTHER_OPS
from edgekit.backends.litert.tflite_file import FLOAT_TYPES, read_tflite
from edgekit.backends.onnxruntime.smooth import Int8Grid
from edgekit.backends.pt2e import calibrate, capture, integer_scalar_ops
from edgekit.backends.pt2e_prep import ADDED, int8_tables, prepare
from edgekit.errors import ConversionError, UsageError, first_line
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
    module, quant_config, details = torch_module(model.obj), None, dict[str, Any]()  # the loaders set eval mode
    if ctx.recipe.quantization == "full-integer":
        module, quant_config, details = _static_int8(ctx, torch, module, args)
    try:
        with quiet(), warnings.catch_warnings():  # its progress lines and the int64 -> int32 I/O notice
            warnings.simplefilter("ignore")
            edge_model = litert_torch.convert(module, args, quant_config=quant_config)
            edge_model.export(str(ctx.out))
    except Exception as e:  # torch.export and the lowering raise many types; the first line names the op
        raise ConversionError(f"litert-torch could not convert {model.source}: {first_line(e)}") from None
    details = {
        "converter": f"litert-torch {litert_torch.__version__}",
        "static_shapes": {s.name: list(s.shape) for s in model.signature.inputs},
        **details,
    }
    applied = "none" if quant_config is None else "full-integer"
    if ctx.recipe.quantization == "dynamic":
        details["quantizer"] = _dynamic_int8(ctx.out)
        applied = "dynamic"
    if ctx.recipe.quantization == "int16x8":
        details.update(_static_int16(ctx, ctx.out))
        applied = "int16x8"
    info = read_tflite(ctx.out.read_bytes())
    details["op_types"] = info.op_types()
    if applied in ("full-integer", "int16x8"):  # what stayed float: by design (the non-linear ops), kept, or at the I/O
        details["float_op_types"] = info.float_op_types()
        details["integer_io"] = not any(t.dtype in FLOAT_TYPES for t in (*info.inputs, *info.outputs))
    return StepNotes(details, applied=applied)


def _static_int8(ctx: StepContext, torch, module, args: tuple) -> tuple[Any, Any, dict[str, Any]]:
    """PT2E static int8 with litert-torch's quantizer (TFLite's int8 spec: per-channel symmetric weights,
    asymmetric activations), calibrated on --calib, with the fallback's layers left unannotated (float).
    Returns the converted graph, the QuantConfig litert-torch lowers it with, and the sidecar's notes."""
    from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config
    from litert_torch.quantize.quant_config import QuantConfig
    from torchao.quantization.pt2e.quantizer import get_module_name_filter

    kept = [get_module_name_filter(name) for name in ctx.keep_float]

    class LiteRTQuantizer(PT2EQuantizer):
        """litert-torch's quantizer on float tensors only, with the fallback's modules left unannotated (float).
        Its own module-name filter reads torch.export's older names for the module stack and matches nothing in
        torch 2.13; and it annotates integer arithmetic too (RoBERTa's position ids), whose observers fail."""

        def _annotate_for_static_quantization_config(self, model):
            self._annotate_all_static_patterns(  # the multiplies prepare() adds stay float
                model, self.global_config, lambda node: not node.meta.get(ADDED) and not any(i(node) for i in kept)
            )
            for node in model.graph.nodes:
                note = node.meta.get("quantization_annotation")
                if note is not None and not all(_is_float(n) for n in (node, *(note.input_qspec_map or {}))):
                    del node.meta["quantization_annotation"]
            return model

    quantizer = LiteRTQuantizer().set_global(
        _min_max_activations(get_symmetric_quantization_config(is_per_channel=True))
    )
    names = ctx.model.signature.input_names
    graph_module, tables = _capture_with_int8_tables(ctx, torch, module, args)
    rewritten = integer_scalar_ops(torch, graph_module)
    # TFLite's int8 grid: asymmetric per-tensor activations, symmetric per-channel weights
    graph_module, prepared = prepare(
        torch, graph_module, ctx.calibration, names, Int8Grid(activation_symmetric=False, weight_qmax=127)
    )
    converted = calibrate(
        torch, graph_module, quantizer, ctx.calibration, names, fold_quantize=False,
        hint="Use tflite-dynamic (int8 weights, float activations), or onnx-int8 for static int8.",
    )  # fmt: skip
    return (
        converted,
        QuantConfig(pt2e_quantizer=quantizer),
        {
            "quantizer": "litert-torch PT2EQuantizer (PT2E static int8, per-channel weights)",
            "calibration_samples": len(ctx.calibration),
            "integer_scalar_ops_kept_integer": rewritten,
            **prepared,
            "int8_embedding_tables": tables,
            "float_layers": [OTHER_OPS, *ctx.keep_float],
        },
    )


def _min_max_activations(config):
    """litert-torch's config with each activation's range its calibration min and max, the grid prepare() chose its
    scales for (its histogram observer clips the channels those scales kept apart)."""
    import dataclasses

    from torchao.quantization.pt2e.observer import MinMaxObserver

    spec = dataclasses.replace(config.input_activation, observer_or_fake_quant_ctr=MinMaxObserver.with_args(eps=2**-12))
    return dataclasses.replace(config, input_activation=spec, output_activation=spec)


def _capture_with_int8_tables(ctx: StepContext, torch, module, args: tuple) -> tuple[Any, int | str]:
    """The captured graph with the module's large embedding tables int8 (on a copy; not when the fallback keeps
    the lookups float), and how many; a forward that reads a table's float weight itself is captured as it is."""
    source = ctx.model.source
    if LOOKUPS in ctx.keep_float:
        return capture(torch, module, args, source).module(), f"0: {LOOKUPS} kept float"
    swapped = copy.deepcopy(module)
    tables = int8_tables(torch, swapped)
    if not tables:
        return capture(torch, module, args, source).module(), 0
    try:
        return capture(torch, swapped, args, source).module(), tables
    except UsageError as e:
        return capture(torch, module, args, source).module(), f"0: the model reads its tables itself ({first_line(e)})"


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


def _static_int16(ctx: StepContext, path: Path) -> dict[str, Any]:
    """Rewrite the float .tflite at `path` with int16 activations and int8 weights on its linear ops (fully
    connected, batch matmul, convolutions): ai-edge-quantizer's static recipe calibrated on --calib (its
    calibrator passes integer inputs such as token ids through, which TFLite's 16x8 calibrator refuses). The
    other ops stay float, as in this route's int8 (all ops int16 lost 3.8 points on the demo's MiniLM, the linear
    ones 0.2), and so do the fallback's layers, found by their weights; embedding tables are stored int8
    (weight-only). Returns the sidecar's notes."""
    import re

    require("ai_edge_quantizer", "Quantizing a litert-torch file to int16x8")
    from ai_edge_litert.interpreter import Interpreter
    from ai_edge_quantizer import calibrator, quantizer, recipe_manager
    from ai_edge_quantizer.algorithm_manager import AlgorithmName
    from ai_edge_quantizer.qtyping import TFLOperationName
    from ai_edge_quantizer.utils import qsv_utils

    from edgekit.backends.litert.tflite_file import layer_prints, weighted_ops

    named = tuple(n for n in ctx.keep_float if n not in (OTHER_OPS, LOOKUPS))
    by_print = {print_: name for name, print_ in layer_prints(ctx.model, named).items()}
    flatbuffer = path.read_bytes()
    kept = {out: by_print[p] for out, p in weighted_ops(flatbuffer).items() if p in by_print}
    recipe = recipe_manager.RecipeManager()
    for op in _LINEAR:
        recipe.add_static_config(".*", TFLOperationName(op), activation_num_bits=16, weight_num_bits=8)
    for op in () if LOOKUPS in ctx.keep_float else _LOOKUPS:  # the tables int8, their outputs float
        recipe.add_weight_only_config(".*", TFLOperationName(op), num_bits=8)
    for out in kept:  # ai-edge-quantizer scopes an op by its output tensors' names, each ending in ";"
        recipe.add_quantization_config(f"^{re.escape(out)};", TFLOperationName.ALL_SUPPORTED,
                                       algorithm_key=AlgorithmName.NO_QUANTIZE)  # fmt: skip
    interpreter = Interpreter(model_content=flatbuffer)
    key = next(iter(interpreter.get_signature_list()))
    # litert-torch names the inputs args_0, args_1, ... in the source's order, int32 where the source took int64
    dtypes = {arg: d["dtype"] for arg, d in interpreter.get_signature_runner(key).get_input_details().items()}
    names, data = ctx.model.signature.input_names, ctx.calibration
    feeds = [
        {
            arg: data.arrays[name][i : i + 1].astype(dtypes[arg])
            for arg, name in zip(sorted(dtypes, key=_arg_index), names)
        }
        for i in range(len(data))
    ]
    try:
        with quiet(), warnings.catch_warnings():  # its progress bars
            warnings.simplefilter("ignore")
            # the whole calibration set's min and max: Quantizer.calibrate keeps a moving average of each batch's
            # (weight 0.95 on the past), which clipped the demo MiniLM's logits at 2.2 where they reach 4.1
            # (parity cosine 0.941 with every layer int16; 0.9995 with the true ranges)
            ranges = calibrator.Calibrator(flatbuffer, num_threads=1, qsv_update_func=qsv_utils.min_max_update)
            ranges.calibrate({key: feeds}, recipe)
            qt = quantizer.Quantizer(flatbuffer, recipe.get_quantization_recipe())
            result = qt.quantize(ranges.get_model_qsvs(), enable_progress_bar=False, enable_progress_report=False)
    except Exception as e:  # the quantizer raises many types; the first line names the op or tensor
        raise ConversionError(f"ai-edge-quantizer could not quantize {path.name} to int16x8: {first_line(e)}") from None
    path.write_bytes(result.quantized_model)
    return {
        "quantizer": "ai-edge-quantizer static (int16 activations, int8 per-channel weights, min/max ranges over the "
        "whole calibration set; embedding tables int8 weight-only)",
        "calibration_samples": len(data),
        "float_layers": [OTHER_OPS, *sorted(set(kept.values()))],
    }


_LINEAR = ("FULLY_CONNECTED", "BATCH_MATMUL", "CONV_2D", "DEPTHWISE_CONV_2D")  # what int16x8 quantizes here
_LOOKUPS = ("EMBEDDING_LOOKUP",)


def _arg_index(arg: str) -> int:
    return int(arg.rsplit("_", 1)[-1])


def _is_float(node) -> bool:
    """Whether a graph node's value is a floating-point tensor (what an int8 observer can measure)."""
    value = node.meta.get("val")
    return getattr(getattr(value, "dtype", None), "is_floating_point", False)
