"""Keras / ONNX -> .tflite: one TFLite converter call per target, after freezing the graph.

Keras models arrive as the loader's traced tf.function; ONNX graphs (and PyTorch ones, through
torch -> ONNX) go through onnx2tf to a SavedModel first, with every shape fixed, because onnx2tf
gives silently wrong transformer outputs with a dynamic batch axis. Quantization is a converter
option in TFLite, so it happens here, and the written file is then inspected, not trusted.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from edgekit._lazy import require
from edgekit.backends.base import StepContext, StepNotes
from edgekit.backends.litert.onnx_prep import explain_onnx2tf_failure, prepare_for_onnx2tf
from edgekit.backends.litert.plan import FLOAT, LOOKUPS, OTHER_OPS, OUTPUT_OPS, ConverterSettings, LiteRTPlan
from edgekit.backends.litert.tflite_file import (
    CONVERSION_OPS,
    WEIGHTED_OPS,
    OpInfo,
    fingerprint,
    gathers,
    layer_prints,
    read_tflite,
    weighted_ops,
)
from edgekit.data import CALIB_HINT, Dataset
from edgekit.errors import (
    ConversionError,
    DataError,
    MissingDependencyError,
    UnsupportedOpError,
    UsageError,
    first_line,
    is_user_frame,
)
from edgekit.quiet import quiet
from edgekit.sources.keras_source import quiet_tf
from edgekit.spec import TensorSpec, np_dtype


def from_keras(ctx: StepContext) -> StepNotes:
    """The Keras loader already traced the model into a tf.function with its input signature."""
    model = ctx.model
    _refuse_integer_inputs_16x8(ctx)
    return _convert(lambda: model.obj, model.signature.inputs, ctx, _kept(ctx))


def _refuse_integer_inputs_16x8(ctx: StepContext) -> None:
    """TFLite's 16x8 calibrator asks for the ranges of every input, integer token ids too, and fails ("Max and
    min for dynamic tensors should be recorded during calibration"): said before a conversion that would end so."""
    integer = [s.name for s in ctx.model.signature.inputs if not s.dtype.startswith("float")]
    if ctx.recipe.quantization == "int16x8" and integer:
        raise UnsupportedOpError(
            f"TFLite's int16x8 calibrator takes float inputs only; {ctx.model.source} has integer inputs "
            f"({', '.join(integer)}).",
            hint="From a PyTorch source the litert-torch route makes tflite-int16x8 (ai-edge-quantizer).",
        )


@contextlib.contextmanager
def _no_sample_download():
    """onnx2tf fetches sample images from github.com to check its conversion whenever every input is a
    channels-last RGB image (an ONNX file from tf2onnx): offline that fails the export, and edgekit never
    talks to the network. It gets generated images of the same shape (20x128x128x3 in [0, 1]) instead."""
    import numpy as np
    from onnx2tf import onnx2tf as tool

    def generated() -> np.ndarray:
        return np.random.default_rng(0).random((20, 128, 128, 3), dtype=np.float32)

    saved = tool.download_test_image_data
    tool.download_test_image_data = generated
    try:
        yield
    finally:
        tool.download_test_image_data = saved


def from_onnx(ctx: StepContext) -> StepNotes:
    """ONNX -> SavedModel (onnx2tf, static shapes, source layout kept) -> .tflite."""
    _refuse_integer_inputs_16x8(ctx)
    tf = _tf()
    onnx2tf = require("onnx2tf", "Converting ONNX to TFLite")
    model, src = ctx.model, ctx.src
    onnx_file = src or Path(model.source)
    what = f"the ONNX export of {model.source}" if src else model.source
    # fixed by the exporter (Edge.static_shapes)
    shapes = {s.name: tuple(int(d) for d in s.shape) for s in model.signature.inputs}
    specs = model.signature.inputs
    # static dims, shape subgraphs folded, Erf GELUs fused, constant outputs kept computed (see onnx_prep)
    ready = ctx.out.with_name(ctx.out.stem + "-onnx2tf.onnx")  # in the staging folder, removed with it
    prep = prepare_for_onnx2tf(Path(onnx_file), shapes, ready)
    key = _calibration_key(ctx) if ctx.plan.settings.integer_io else None  # smoothing is for full integer only

    def build():
        """onnx2tf's Keras model, wrapped in a tf.function with the source's input names and order."""
        if key is not None:
            _smooth(ctx, ready, key)
            _group_channels(ctx, ready, key)
            _adaround(ctx, ready, key)
        log = io.StringIO()  # onnx2tf prints the failing node ("onnx_op_name: ...") to stdout
        _fresh_layer_names()
        try:
            with quiet(), contextlib.redirect_stdout(log), _no_sample_download():
                # disable_model_save: onnx2tf returns its Keras model instead of saving a SavedModel and
                # converting it to .tflite itself (two more full conversions: minutes on a BERT-sized model)
                keras_model = onnx2tf.convert(
                    input_onnx_file_path=str(ready),
                    non_verbose=True,
                    overwrite_input_shape=[f"{n}:{','.join(map(str, s))}" for n, s in shapes.items()],
                    # keep the source's NCHW layout so feeds, parity and the app code stay the same
                    keep_ncw_or_nchw_or_ncdhw_input_names=[n for n, s in shapes.items() if 3 <= len(s) <= 5],
                    not_use_onnxsim=True,
                    disable_model_save=True,
                    # it creates this folder even when it saves nothing (default: ./saved_model in the user's
                    # working directory): inside the export's staging folder, removed with it
                    output_folder_path=str(ctx.out.with_name(ctx.out.stem + "-onnx2tf")),
                )
        except SystemExit as e:  # onnx2tf exits on ops it cannot convert, after logging which
            raise ConversionError(
                f"onnx2tf could not convert {what} (exit {e.code}): "
                + explain_onnx2tf_failure("", ready, log.getvalue()),
                hint="Run onnx2tf on the file by hand to see the op it stopped at.",
            ) from None
        except Exception as e:
            raise ConversionError(
                f"Could not convert {what}: {explain_onnx2tf_failure(str(e), ready, log.getvalue())}",
                hint="Export it to an ONNX Runtime target, or simplify the graph.",
            ) from None
        keras_names = [t.name.split(":")[0] for t in keras_model.inputs]
        # onnx2tf keeps the ONNX input names (sanitized); match by name where it did, else by position
        order = [keras_names.index(s.name) for s in specs] if set(keras_names) == {s.name for s in specs} else None

        @tf.function(input_signature=[tf.TensorSpec(s.shape, s.dtype, name=s.name) for s in specs])
        def fn(*args):
            feed = [args[order.index(i)] for i in range(len(args))] if order else list(args)
            result = keras_model(feed)
            return list(result) if isinstance(result, (list, tuple)) else [result]

        return fn

    notes = _convert(build, specs, ctx, _kept(ctx))
    records: dict[str, dict[tuple, Any]] = {"smoothing": _SMOOTHED, "channel_groups": _GROUPED, "adaround": _ROUNDED}
    notes.details = {
        "converter_from_onnx": "onnx2tf",
        "static_shapes": {n: list(s) for n, s in shapes.items()},
        "onnx_prep": prep,
        **{field: record[key][0] for field, record in records.items() if key is not None and key in record},
        **notes.details,
    }
    return notes


# Per export, like _CALIBRATED: what each rewrite of the float ONNX graph did before the calibration of that key
# (its notes, and the fingerprints it changed). Smoothing: source layer's weight -> the smoothed file's (scaled
# rows); channel groups: a split layer's weight -> its parts' weights.
_SMOOTHED: dict[tuple, tuple[dict | str, dict[tuple, tuple]]] = {}
_GROUPED: dict[tuple, tuple[dict | str, dict[tuple, list[tuple]]]] = {}
_ROUNDED: dict[tuple, tuple[dict | str, dict[tuple, tuple]]] = {}  # AdaRound: a weight -> its learned rounding


def _rewrite_for_int8(ctx: StepContext, ready: Path, key: tuple, record: dict, off: str | None, method: str, rewrite):
    """Full integer: `rewrite(model, data)` on the ONNX graph onnx2tf reads (exact in float), its (notes,
    fingerprints) recorded under the export's key; `off`: the note when the user's option turned it off."""
    data = ctx.data
    if data is None:
        return
    record.clear()
    for other in [k for k in _CALIBRATED if k != key]:  # a calibration the records no longer describe
        del _CALIBRATED[other]
    if off is not None:
        record[key] = off, {}
        return
    import onnx

    model = onnx.load(str(ready))
    try:
        done = rewrite(model, data)
    except MissingDependencyError:  # the user asked for the method: say what to install
        raise
    except Exception as e:  # the calibration run failed: the converter's calibration will say why in its words
        record[key] = {"method": method, "skipped": first_line(e, 200)}, {}
        return
    onnx.save(model, str(ready), save_as_external_data=model.ByteSize() > 1_500_000_000)
    record[key] = done


def _weights_changed(model, change: Callable[[], dict]) -> tuple[dict, dict[tuple, tuple]]:
    """`change()`'s notes, and the fingerprint of each weight (2-D or more) it changed in `model` -> its new one."""
    from onnx import numpy_helper

    prints = lambda: {i.name: fingerprint(numpy_helper.to_array(i)) for i in model.graph.initializer if len(i.dims) > 1}
    before = prints()
    notes = change()
    after = prints()
    return notes, {before[n]: p for n, p in after.items() if n in before and p != before[n]}


def _smooth(ctx: StepContext, ready: Path, key: tuple) -> None:
    """--smoothquant: SmoothQuant (TFLite's grid: asymmetric per-tensor int8 activations, symmetric per-channel
    weights), its strength chosen per layer group."""
    from edgekit.backends.onnxruntime.smooth import Int8Grid, smooth

    def rewrite(model, data: Dataset) -> tuple:
        grid = Int8Grid(activation_symmetric=False, weight_qmax=127)
        return _weights_changed(model, lambda: smooth(model, data, ctx.batch_size, grid))

    off = None if getattr(ctx.options, "smoothquant", False) else "off (--smoothquant not given)"
    _rewrite_for_int8(ctx, ready, key, _SMOOTHED, off, "SmoothQuant", rewrite)


def _group_channels(ctx: StepContext, ready: Path, key: tuple) -> None:
    """Channel groups (onnx_groups.py), after any smoothing."""
    from edgekit.backends.litert.onnx_groups import split_channel_groups
    from edgekit.sensitivity import quantizable_layers

    def rewrite(model, data: Dataset) -> tuple:
        # the sidecar names a split layer as the source does: by its weights (scaled where smoothing ran first)
        scaled = _SMOOTHED[key][1] if key in _SMOOTHED else {}
        prints = layer_prints(ctx.model, tuple(quantizable_layers(ctx.model)))
        names = {scaled.get(print_, print_): name for name, print_ in prints.items()}
        return split_channel_groups(model, data, ctx.batch_size, names)

    off = None if getattr(ctx.options, "channel_groups", True) else "off (--no-channel-groups)"
    _rewrite_for_int8(ctx, ready, key, _GROUPED, off, "channel groups", rewrite)


def _adaround(ctx: StepContext, ready: Path, key: tuple) -> None:
    """--adaround: AdaRound on TFLite's weight grid (symmetric int8, one scale per output channel), after the
    channel groups; the converter's round-to-nearest then reproduces the learned weights. A convolution a batch
    norm follows is left alone: the converter folds the batch norm into its weights, off the grid."""
    from edgekit.backends.onnxruntime.adaround import AdaRoundSettings, adaround
    from edgekit.backends.onnxruntime.bias_correction import WeightGrid

    def rewrite(model, data: Dataset) -> tuple:
        read_by = {i: n.op_type for n in model.graph.node for i in n.input}
        folded = {n.name for n in model.graph.node if read_by.get(n.output[0]) == "BatchNormalization"}
        grid = WeightGrid(qmax=127, per_channel=True)
        return _weights_changed(model, lambda: adaround(model, data, ctx.batch_size, grid, folded, AdaRoundSettings()))

    off = None if getattr(ctx.options, "adaround", False) else "off (--adaround not given)"
    _rewrite_for_int8(ctx, ready, key, _ROUNDED, off, "AdaRound", rewrite)


def _file_prints(prints: dict[str, tuple], key: tuple) -> dict[str, list[tuple]]:
    """The kept layers' weight fingerprints as the converted file holds those weights: scaled rows where smoothed,
    one per part where split into channel groups, each as AdaRound rounded it."""
    scaled = _SMOOTHED[key][1] if key in _SMOOTHED else {}
    parts = _GROUPED[key][1] if key in _GROUPED else {}
    rounded = _ROUNDED[key][1] if key in _ROUNDED else {}
    found = {}
    for name, print_ in prints.items():
        print_ = scaled.get(print_, print_)
        found[name] = [rounded.get(p, p) for p in parts.get(print_, [print_])]
    return found


def _fresh_layer_names() -> None:
    """Restart Keras' layer-name counters before onnx2tf builds its model (with tf_keras): the names end up in
    the .tflite, and without this they number on from whatever this process built before, so the same export
    gave different bytes in a fresh process and after another conversion."""
    import tf_keras

    tf_keras.backend.clear_session()


_GROUPS = (OTHER_OPS, LOOKUPS)


def _kept(ctx: StepContext) -> tuple[frozenset[str], dict[str, tuple], bool]:
    """The fallback's request in TFLite terms: the groups of ops that stay float (the non-linear ops, the
    embedding lookups), and the fingerprints of the weights of the layers kept float (TFLite names its ops
    differently; their weights match)."""
    named = tuple(n for n in ctx.keep_float if n not in _GROUPS)
    groups = frozenset(ctx.keep_float) & frozenset(_GROUPS)
    return groups, layer_prints(ctx.model, named), ctx.model.format == "keras"


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
    if frozen is None:  # a fallback attempt on a cached calibrated file
        return []
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


@dataclass(frozen=True)
class _Calibrated:
    """A float file with the calibration statistics TFLite's quantizer reads, and what the denylists are
    built from: its FULLY_CONNECTED/CONV ops' weight fingerprints and its other op types."""

    data: bytes
    weighted: dict[str, tuple]  # output tensor name -> fingerprint of the op's weights
    other_op_types: frozenset[str]
    outputs: tuple[str, ...]  # the tensors the model returns (the names of the ops that compute them)
    gathers: dict[str, bool]  # each GATHER's output -> whether it looks rows up in a constant table (an embedding)


# Per export: the fallback re-runs this converter once per attempt, and only the denylists change between
# attempts (key: source, float file, shapes, settings, calibration data, the backend's options).
_CALIBRATED: dict[tuple, _Calibrated] = {}


def _calibration_key(ctx: StepContext) -> tuple:
    from edgekit.checksum import sha256_path

    shapes = tuple((s.name, tuple(s.shape)) for s in ctx.model.signature.inputs)
    data = ctx.data.sha256 if ctx.data is not None else None
    src = sha256_path(ctx.src) if ctx.src else None
    return ctx.model.source_hash, src, shapes, ctx.plan.settings, data, repr(ctx.options)  # options: --smoothquant


def _calibrate(tf, frozen, settings: ConverterSettings, data: Dataset, specs) -> _Calibrated:
    """Calibrate once (the documented first step of tf.lite's QuantizationDebugger) and read the file once."""
    converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen])
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = _representative(data, specs)
    converter.target_spec.supported_ops = [getattr(tf.lite.OpsSet, settings.ops), tf.lite.OpsSet.TFLITE_BUILTINS]
    converter._experimental_calibrate_only = True
    with quiet(), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        calibrated = converter.convert()
    info = read_tflite(calibrated)
    op_types = {op.op for op in info.ops} - WEIGHTED_OPS - CONVERSION_OPS
    outputs = tuple(t.name for t in info.outputs)
    return _Calibrated(calibrated, weighted_ops(calibrated), frozenset(op_types), outputs, gathers(calibrated))


def _quantize_keeping_float(
    tf,
    calibrated: _Calibrated,
    settings: ConverterSettings,
    kept: tuple[frozenset[str], dict[str, list[tuple]], bool],
    outputs: bool,
) -> tuple[bytes, list[str]]:
    """Full-integer quantization of a calibrated file with layers left float: TFLite's MLIR quantizer with
    denylists (every non-linear op type but the embedding lookups when the fallback asks, the lookups when it
    asks for them; the FULLY_CONNECTED/CONV ops whose weights are the kept layers'; with `outputs`, the ops that
    compute the model's outputs). Returns the file and the layers it kept float."""
    from tensorflow.lite.python.convert import mlir_quantize

    from edgekit.sensitivity import keras_scoped

    groups, prints, by_scope = kept
    by_print = {print_: name for name, each in prints.items() for print_ in each}
    # by weights, or (Keras sources, whose batch norms the converter folds into the weights) by scope name
    nodes: dict[str, str] = {}
    for out, print_ in calibrated.weighted.items():
        layer = by_print.get(print_) or (keras_scoped(out, tuple(prints)) if by_scope else None)
        if layer:
            nodes[out] = layer
    # an int8 op's output is requantized to int8 steps before any DEQUANTIZE: float outputs need float ops
    nodes |= {name: OUTPUT_OPS for name in calibrated.outputs if outputs and name not in nodes}
    # a GATHER is denied by node: an embedding lookup stays int8 (its table a quarter the size) unless asked
    denied = sorted(calibrated.other_op_types - {"GATHER"}) if OTHER_OPS in groups else []
    for name, lookup in calibrated.gathers.items():
        group = LOOKUPS if lookup else OTHER_OPS
        if group in groups and name not in nodes:
            nodes[name] = group
    with quiet():
        flatbuffer = mlir_quantize(
            calibrated.data,
            fully_quantize=settings.integer_io,
            input_data_type=tf.float32,
            output_data_type=tf.int8 if settings.integer_io else tf.float32,
            denylisted_ops=denied or None,
            denylisted_nodes=sorted(nodes) or None,
        )
    order = {group: i for i, group in enumerate(_GROUPS)}  # the groups first, in the fallback's order
    return flatbuffer, sorted(set(nodes.values()) | (groups & {OTHER_OPS}), key=lambda n: (order.get(n, 2), n))


def _convert(
    build: Callable[[], Any],
    specs: tuple[TensorSpec, ...],
    ctx: StepContext,
    kept: tuple[frozenset[str], dict[str, tuple], bool],
) -> StepNotes:
    """Freeze the tf.function `build()` returns and convert it with the plan's settings (keeping the
    fallback's layers float when it asks)."""
    tf = _tf()
    plan: LiteRTPlan = ctx.plan
    settings, data, source, out_path = plan.settings, ctx.data, ctx.model.source, ctx.out
    float_io = settings.integer_io and getattr(ctx.options, "float_io", False)
    if float_io:  # int8 inside, float32 at the file's edges: a QUANTIZE after each input, the output ops float
        settings = replace(settings, integer_io=False)
    fallback = plan.allow_float_fallback
    groups, kept_weights, by_scope = kept
    keeping = bool(groups or kept_weights or float_io) and data is not None and settings.calibrate
    key = _calibration_key(ctx) if keeping else ()
    frozen = None
    if not keeping or key not in _CALIBRATED:
        frozen = _freeze(build(), source)
        _check_device_ops(tf, frozen, plan, source, specs, data)
    float_layers: list[str] = []
    try:
        if keeping and data is not None:
            if key not in _CALIBRATED:
                _CALIBRATED.clear()  # one export's at a time
                _CALIBRATED[key] = _calibrate(tf, frozen, settings, data, specs)
            calibrated = _CALIBRATED[key]
            in_file = (groups, _file_prints(kept_weights, key), by_scope)
            flatbuffer, float_layers = _quantize_keeping_float(tf, calibrated, settings, in_file, float_io)
        else:
            flatbuffer = _run_converter(tf, frozen, settings, data, specs, fallback)
    except Exception as e:  # ConverterError and friends; translate into what the user can act on
        raise _explain_failure(e, frozen, source, settings, fallback) from None
    info = read_tflite(flatbuffer)
    float_ops = info.float_ops() if settings.calibrate and not float_layers else []
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
            **({"float_layers": float_layers, "float_op_types": info.float_op_types()} if float_layers else {}),
            "calibration_samples": len(data) if settings.calibrate and data is not None else 0,
            **({"io": "float32 (--float-io): the ops computing the outputs float, int8 inside"} if float_io else {}),
        },
        applied=plan.quantization,
    )
