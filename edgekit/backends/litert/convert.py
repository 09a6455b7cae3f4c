"""Keras / ONNX -> .tflite: one TFLite converter call per target, after freezing the graph.

Keras models arrive as the loader's traced tf.function; ONNX graphs (and PyTorch ones, through
torch -> ONNX) go through onnx2tf to a SavedModel first, with every shape fixed, because onnx2tf
gives silently wrong transformer outputs with a dynamic batch axis. Quantization is a converter
option in TFLite, so it happens here, and the written file is then inspected, not trusted.
"""

from __future__ import annotations

import logging
import re
import warnings
from pathlib import Path
from typing import Any

from edgekit._lazy import require
from edgekit.backends.base import StepContext, StepNotes
from edgekit.backends.litert.plan import FLOAT, ConverterSettings, LiteRTPlan, UnsupportedOpError
from edgekit.backends.litert.tflite_file import OpInfo, read_tflite
from edgekit.data import CALIB_HINT, Dataset
from edgekit.errors import ConversionError, DataError, UsageError, first_line, is_user_frame
from edgekit.quiet import quiet
from edgekit.sources.keras_source import quiet_tf
from edgekit.spec import TensorSpec, np_dtype


def from_keras(ctx: StepContext) -> StepNotes:
    """The Keras loader already traced the model into a tf.function with its input signature."""
    model = ctx.model
    return _convert(model.obj, model.signature.inputs, ctx.out, ctx.plan, ctx.data, source=model.source)


def from_onnx(ctx: StepContext) -> StepNotes:
    """ONNX -> SavedModel (onnx2tf, static shapes, source layout kept) -> .tflite."""
    tf = _tf()
    onnx2tf = require("onnx2tf", "Converting ONNX to TFLite")
    model, src = ctx.model, ctx.src
    onnx_file = src or Path(model.source)
    what = f"the ONNX export of {model.source}" if src else model.source
    shapes = {s.name: s.shape for s in model.signature.inputs}  # fixed by the exporter (Edge.static_shapes)
    try:
        with quiet():
            # disable_model_save: onnx2tf returns its Keras model instead of saving a SavedModel and
            # converting it to .tflite itself (two more full conversions: minutes on a BERT-sized model)
            keras_model = onnx2tf.convert(
                input_onnx_file_path=str(onnx_file),
                non_verbose=True,
                overwrite_input_shape=[f"{n}:{','.join(map(str, s))}" for n, s in shapes.items()],
                # keep the source's NCHW layout so feeds, parity and the app code stay the same
                keep_ncw_or_nchw_or_ncdhw_input_names=[n for n, s in shapes.items() if 3 <= len(s) <= 5],
                not_use_onnxsim=True,
                disable_model_save=True,
            )
    except SystemExit as e:  # onnx2tf exits on ops it cannot convert, after logging which
        raise ConversionError(
            f"onnx2tf could not convert {what} (exit {e.code}).",
            hint="Run onnx2tf on the file by hand to see the op it stopped at.",
        ) from None
    except Exception as e:
        raise ConversionError(
            f"onnx2tf could not convert {what}: {first_line(e)}",
            hint="Export it to an ONNX Runtime target, or simplify the graph.",
        ) from None
    specs = model.signature.inputs
    keras_names = [t.name.split(":")[0] for t in keras_model.inputs]
    # onnx2tf keeps the ONNX input names (sanitized); match by name where it did, else by position
    order = [keras_names.index(s.name) for s in specs] if set(keras_names) == {s.name for s in specs} else None

    @tf.function(input_signature=[tf.TensorSpec(s.shape, s.dtype, name=s.name) for s in specs])
    def fn(*args):
        feed = [args[order.index(i)] for i in range(len(args))] if order else list(args)
        result = keras_model(feed)
        return list(result) if isinstance(result, (list, tuple)) else [result]

    notes = _convert(fn, specs, ctx.out, ctx.plan, ctx.data, source=model.source)
    notes.details = {
        "converter_from_onnx": "onnx2tf",
        "static_shapes": {n: list(s) for n, s in shapes.items()},
        **notes.details,
    }
    return notes


def _tf():
    logging.getLogger("absl").setLevel(logging.ERROR)  # the converter's deprecation chatter
    return quiet_tf("Converting to TFLite")


def _freeze(fn, source: str):
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    try:
        with quiet():
            return convert_variables_to_constants_v2(fn.get_concrete_function())
    except Exception as e:  # tracing runs the model's Python: any error type can come out
        raise UsageError(
            f"{source} cannot be traced into a TensorFlow graph: {_tracing_cause(e)}",
            hint="The model's call() must work on symbolic tensors: no .numpy(), no Python `if`/`for` on tensor "
            "values (use tf.cond / tf.while_loop or keras.ops), no Python-side state.",
        ) from None


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_FRAME = re.compile(r'File "([^"]+)", line (\d+), in (\w+)')


def _tracing_cause(e: Exception) -> str:
    """The user's frame and the error from TensorFlow's 'in user code:' report."""
    lines = [ln.strip() for ln in _ANSI.sub("", str(e)).splitlines() if ln.strip()]
    frames = [m for ln in lines if (m := _FRAME.search(ln)) and is_user_frame(m.group(1))]
    errors = [i for i, ln in enumerate(lines) if re.match(r"\w+(Error|Exception): ", ln)]
    cause = lines[errors[-1] : errors[-1] + 2] if errors else lines[:1]
    cause = [ln for ln in cause if not ln.startswith("Arguments received")]
    where = f" (in {frames[-1].group(3)}(), line {frames[-1].group(2)})" if frames else ""
    return " ".join(cause)[:400] + where


def _representative(data: Dataset, specs: tuple[TensorSpec, ...]):
    def samples():  # the converter's calibrator runs one sample at a time
        for i in range(len(data)):
            yield [data.arrays[s.name][i : i + 1].astype(np_dtype(s.dtype)) for s in specs]

    return samples


def _run_converter(tf, frozen, settings: ConverterSettings, data: Dataset | None, specs, fallback: bool) -> bytes:
    converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen])
    if settings.optimize:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if settings.float16:
        converter.target_spec.supported_types = [tf.float16]
    if settings.calibrate:
        if data is None:
            raise DataError(
                "The TFLite converter calibrates int8 ranges on --calib data; none was given.", hint=CALIB_HINT
            )
        converter.representative_dataset = _representative(data, specs)
    ops = [getattr(tf.lite.OpsSet, settings.ops)]
    if fallback and settings.ops != "TFLITE_BUILTINS":
        ops.append(tf.lite.OpsSet.TFLITE_BUILTINS)  # float kernels where no integer one exists
    converter.target_spec.supported_ops = ops
    if settings.integer_io:
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    with quiet(), warnings.catch_warnings():
        # "Statistics for quantized inputs were expected": int8 I/O gets its ranges from calibration
        warnings.simplefilter("ignore", UserWarning)
        return converter.convert()


_TF_OP = re.compile(r"'tf\.(\w+)' op is neither a custom op nor a flex op")
_TFL_OP = re.compile(r"'tfl\.(\w+)' op (?:is not supported|.*quantiz)", re.IGNORECASE)


def _layer(tensor_name: str) -> str:
    """A graph name without the call wrappers tf.function adds: what is left is the layer path."""
    return re.sub(r"^((Stateful)?PartitionedCall(_\d+)?/)+", "", tensor_name)


def _graph_nodes(frozen, op_types: set[str]) -> list[str]:
    """Names of the frozen graph's nodes of these TF op types (they carry the Keras layer path)."""
    return [_layer(n.name) for n in frozen.graph.as_graph_def().node if n.op in op_types]


def _explain_failure(e: Exception, frozen, source: str, settings: ConverterSettings, fallback: bool) -> Exception:
    text = str(e)
    tf_ops = sorted(set(_TF_OP.findall(text)))
    if tf_ops:
        nodes = _graph_nodes(frozen, set(tf_ops))
        return UnsupportedOpError(
            f"{source} uses TensorFlow op(s) with no TFLite kernel: {', '.join(tf_ops)}"
            + (f" (in {', '.join(nodes[:5])})" if nodes else "")
            + ".",
            hint="Replace the layer with TFLite builtin ops (see the TFLite op list), or export to an ONNX target.",
        )
    tfl_ops = sorted(set(_TFL_OP.findall(text)))
    if settings.ops != "TFLITE_BUILTINS" and not fallback:
        return UnsupportedOpError(
            f"{source} cannot be converted with integer kernels only"
            + (f": no integer kernel for {', '.join(tfl_ops)}" if tfl_ops else f": {first_line(e)}")
            + ".",
            hint="Pass --allow-float-fallback to keep those ops in float (listed in the sidecar), "
            "or use tflite-dynamic.",
        )
    return ConversionError(f"The TFLite converter failed on {source}: {first_line(e)}")


def _describe(op: OpInfo) -> dict[str, Any]:
    return {"op": op.op, "index": op.index, "layer": _layer(op.outputs[0].name) if op.outputs else None}


def _check_device_ops(tf, frozen, plan: LiteRTPlan, source: str, specs, data) -> None:
    """Before the calibrated conversion: every op of a float conversion must be one the device runs."""
    if plan.supported_ops is None:
        return
    probe = read_tflite(_run_converter(tf, frozen, FLOAT, data, specs, fallback=False))
    missing = [op for op in probe.ops if op.op not in plan.supported_ops]
    if missing:
        names = sorted({op.op for op in missing})
        where = ", ".join(f"{op.op} at {_layer(op.outputs[0].name)}" for op in missing[:5] if op.outputs)
        raise UnsupportedOpError(
            f"Device profile '{plan.device}' does not run {', '.join(names)} ({where}); "
            f"{source} cannot run whole on it.",
            hint=f"It runs: {', '.join(plan.supported_ops)}. Change those layers or pick another --device.",
        )


def _convert(
    fn, specs: tuple[TensorSpec, ...], out_path: Path, plan: LiteRTPlan, data: Dataset | None, source: str
) -> StepNotes:
    tf = _tf()
    settings = plan.settings
    fallback = plan.allow_float_fallback
    frozen = _freeze(fn, source)
    _check_device_ops(tf, frozen, plan, source, specs, data)
    try:
        flatbuffer = _run_converter(tf, frozen, settings, data, specs, fallback)
    except Exception as e:  # ConverterError and friends; translate into what the user can act on
        raise _explain_failure(e, frozen, source, settings, fallback) from None
    info = read_tflite(flatbuffer)
    float_ops = info.float_ops() if settings.calibrate else []
    if float_ops and not fallback:
        listed = ", ".join(f"{o.op} ({_layer(o.outputs[0].name)})" for o in float_ops[:8])
        raise UnsupportedOpError(
            f"The converted file is not integer-only: {len(float_ops)} op(s) compute in float: {listed}.",
            hint="edgekit does not call such a file int8. Pass --allow-float-fallback to accept them "
            "(they are listed in the sidecar), or use tflite-dynamic.",
        )
    out_path.write_bytes(flatbuffer)
    return StepNotes(
        {
            "converter": f"tf.lite.TFLiteConverter {tf.__version__}",
            "ops_set": settings.ops,
            "op_types": info.op_types(),
            "float_fallback_ops": [_describe(o) for o in float_ops],
            "calibration_samples": len(data) if settings.calibrate and data is not None else 0,
        },
        applied=plan.quantization,
    )
