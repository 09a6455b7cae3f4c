"""Per-layer quantization sensitivity: how much the model's output moves when one layer alone is int8.

Measured on the source in its own framework, on the calibration data: each quantizable layer (Linear,
Conv; Keras Dense/Conv/DepthwiseConv; for ONNX sources MatMul/Gemm/Conv with a weight) gets its weights
fake-quantized to int8 (symmetric, per output channel) and its input activations fake-quantized as the target
will do it (static: one range calibrated over the data; dynamic: a range per batch), with every other layer
left float. The error is the output's relative squared error against the float model. The outlier ratio
(max|x| / p99.9|x| of the layer's input) says why a layer is sensitive: a range stretched over rare
outliers leaves the bulk of the values a few levels.
"""

from __future__ import annotations

import difflib
import fnmatch
import functools
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from edgekit.data import Dataset
from edgekit.errors import UsageError
from edgekit.sources.base import Model

SAMPLES = 64  # calibration samples the measurement runs on


@dataclass(frozen=True)
class LayerSensitivity:
    layer: str  # the source's name: a torch module path, a Keras layer name, or an ONNX node name
    kind: str  # Linear, Conv2d, MatMul, ...
    error: float  # relative squared output error with only this layer int8
    outlier_ratio: float  # max|x| / p99.9|x| of the layer's input on the calibration data

    def to_json(self) -> dict[str, Any]:
        return {k: (float(f"{v:.4g}") if isinstance(v, float) else v) for k, v in asdict(self).items()}


def symmetric_int8(w: np.ndarray, axis: int = 0, qmax: int = 127) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 weights with one scale per channel along `axis` (the output channels), as every
    runtime's int8 scheme here quantizes weights: (int8 values, float32 scales). `qmax` 63: the 7-bit range
    of ONNX Runtime's reduce_range."""
    peak = np.abs(np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)).max(axis=1)
    scale = np.where(peak > 0, peak / qmax, 1.0).astype(np.float32)
    shaped = scale.reshape([-1 if d == axis else 1 for d in range(w.ndim)])
    return np.clip(np.round(w / shaped), -qmax, qmax).astype(np.int8), scale


def _fake_quant_weight(w: np.ndarray) -> np.ndarray:
    """`w` as int8 would hold it (output channels on axis 0), back in float."""
    q, scale = symmetric_int8(w)
    return (q * scale.reshape((-1,) + (1,) * (w.ndim - 1))).astype(w.dtype)


def fake_quant_activation(x: np.ndarray, lo: float, hi: float, symmetric: bool = False) -> np.ndarray:
    """`x` on an 8-bit grid over [lo, hi] (the range always holds 0, as the runtimes require), back in float:
    asymmetric (uint8, or int8 with its zero point shifted: the same values), or symmetric about 0."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    if symmetric:
        lo, hi = -max(-lo, hi), max(-lo, hi)
    scale = (hi - lo) / (254.0 if symmetric else 255.0) or 1.0
    zero = 0.0 if symmetric else np.round(-lo / scale)
    qmin, qmax = (-127, 127) if symmetric else (0, 255)
    return ((np.clip(np.round(x / scale) + zero, qmin, qmax) - zero) * scale).astype(x.dtype)


def _outlier_ratio(values: list[np.ndarray]) -> float:
    a = np.abs(np.concatenate([v.ravel() for v in values]))
    p999 = float(np.percentile(a, 99.9)) if a.size else 0.0
    return float(a.max()) / p999 if p999 > 0 else 1.0


def _relative_error(got: list[np.ndarray], want: list[np.ndarray]) -> float:
    num = sum(float(np.sum((g - w) ** 2)) for g, w in zip(got, want))
    den = sum(float(np.sum(w**2)) for w in want)
    return num / den if den > 0 else num


_ONNX_KINDS = ("MatMul", "Gemm", "Conv")


def quantizable_layers(model: Model) -> list[str]:
    """The names `--keep-float` and the fallback speak of: Linear/Conv module paths of a torch source,
    Dense/Conv layer names of a Keras model, MatMul/Gemm/Conv nodes with a weight of an ONNX source."""
    if model.format == "torch":
        return list(torch_layers(model))
    if model.format == "keras":
        return list(keras_layers(model))
    if model.format == "onnx":
        return [n.name for n in onnx_layers(model.obj.graph)]
    return []


def layer_weights(model: Model, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The weight array of each named layer (runtimes that name layers differently match them by weights)."""
    if model.format == "torch":
        layers = torch_layers(model)
        return {n: layers[n].weight.detach().numpy() for n in names if n in layers}
    if model.format == "keras":
        found = keras_layers(model)
        return {n: _keras_kernel(found[n]).numpy() for n in names if n in found}
    if model.format == "onnx":
        from onnx import numpy_helper

        graph = model.obj.graph
        inits = {i.name: i for i in graph.initializer}
        by_name = {n.name: n for n in onnx_layers(graph)}
        return {n: numpy_helper.to_array(inits[by_name[n].input[1]]) for n in names if n in by_name}
    return {}


def torch_layers(model: Model) -> dict[str, Any]:
    """A torch source's Linear/Conv modules by module path (empty for sources without a module tree)."""
    from edgekit.sources.torch_source import torch_module

    module = torch_module(model.obj)
    if not hasattr(module, "named_modules"):  # TorchScript and ExportedProgram sources have no module tree
        return {}
    import torch

    kinds = (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d)  # subclasses too (attention's out_proj)
    return {name: m for name, m in module.named_modules() if isinstance(m, kinds)}


_KERAS_KINDS = frozenset({"Dense", "Conv1D", "Conv2D", "Conv3D", "DepthwiseConv1D", "DepthwiseConv2D"})


def keras_layers(model: Model) -> dict[str, Any]:
    """A Keras model's Dense/Conv layers by layer name, in model order (empty for a SavedModel, which has no
    layer objects). Converters keep these names in their node scopes (`model/block_1_expand_1/...`)."""
    keras_model = model.extra.get("keras_model")
    return {
        layer.name: layer
        for layer in getattr(keras_model, "layers", ())
        if type(layer).__name__ in _KERAS_KINDS and _keras_kernel(layer) is not None
    }


def converted_ops(
    layers: tuple[str, ...], ops: list[tuple[str, int]], named: Callable[[str], list[str]], source: Model | None
) -> list[str]:
    """The ops of a converted file that compute `layers`: those `named(layer)` finds by name, else the op at the
    layer's place among the source's layers whose weights have its rank (`ops`: each weighted op's name and
    weight rank, in order), where the file has as many of them; for converters that fold a batch norm into a
    convolution and name the result anew (tf2onnx's `Conv__33`, OpenVINO's `Transpose_2922`)."""
    found: list[str] = []
    ranks: dict[str, int] | None = None  # the source's, read once if a name does not match
    for layer in layers:
        hits = named(layer)
        if not hits and source is not None:
            ranks = _layer_ranks(source) if ranks is None else ranks
            hits = _by_position(layer, ranks, ops)
        found += hits
    return list(dict.fromkeys(found))


def _layer_ranks(model: Model) -> dict[str, int]:
    """Each quantizable layer's weight rank (4: convolutions, depthwise ones too; 2: linear), in layer order."""
    names = quantizable_layers(model)
    weights = layer_weights(model, tuple(names))
    return {n: weights[n].ndim for n in names if n in weights}


def _by_position(layer: str, ranks: dict[str, int], ops: list[tuple[str, int]]) -> list[str]:
    if layer not in ranks:
        return []
    peers = [n for n, rank in ranks.items() if rank == ranks[layer]]
    same = [name for name, rank in ops if rank == ranks[layer]]
    return [same[peers.index(layer)]] if len(same) == len(peers) else []


def keras_scoped(name: str, layers: tuple[str, ...]) -> str | None:
    """The one of `layers` whose scope a converted node's name sits in: tf2onnx and TFLite keep a Keras layer's
    name as a path component (`model/block_1_expand_1/convolution`; TFLite joins fused ops' names with ';')."""
    found = _scope_pattern(tuple(sorted(layers))).search(name) if layers else None
    return found.group(1) if found else None


@functools.lru_cache(maxsize=8)
def _scope_pattern(layers: tuple[str, ...]) -> re.Pattern[str]:
    # longest first, so `block_1_expand` wins over a layer called `block_1`
    names = sorted(layers, key=len, reverse=True)
    return re.compile(r"(?:^|[/;])(" + "|".join(map(re.escape, names)) + r")(?:_\d+)?/")


def _keras_kernel(layer) -> Any:
    """The kernel variable (tf_keras names a depthwise one `depthwise_kernel`)."""
    return getattr(layer, "kernel", None) if hasattr(layer, "kernel") else getattr(layer, "depthwise_kernel", None)


def onnx_layers(graph) -> list:
    inits = {i.name: i for i in graph.initializer}
    return [
        n
        for n in graph.node
        if n.op_type in _ONNX_KINDS
        and len(n.input) > 1
        and n.input[1] in inits
        and n.input[0] not in inits
        and len(inits[n.input[1]].dims) >= 2
    ]


def measure(model: Model, data: Dataset, dynamic: bool = False, batch_size: int = 16) -> list[LayerSensitivity]:
    """The sensitivity of every quantizable layer of `model`, most sensitive first."""
    data = data.head(SAMPLES)
    if model.format == "torch":
        found = _measure_torch(model, data, dynamic, batch_size)
    elif model.format == "onnx":
        found = _measure_onnx(model, data, dynamic, batch_size)
    elif model.format == "keras" and model.kind == "keras3":
        found = _measure_keras(model, data, dynamic, batch_size)
    else:
        raise UsageError(
            f"Per-layer sensitivity is measured on PyTorch, Keras 3 and ONNX sources; {model.source} is "
            f"{model.format} ({model.kind}).",
            hint="Pin layers by hand with --keep-float, or pass --no-fallback.",
        )
    return sorted(found, key=lambda s: s.error, reverse=True)


def _measure_torch(model: Model, data: Dataset, dynamic: bool, batch_size: int) -> list[LayerSensitivity]:
    import torch

    from edgekit.sources.torch_source import flatten_outputs, torch_module

    module = torch_module(model.obj)
    names = model.signature.input_names
    batch_size = 1 if any(isinstance(s.shape[0], int) for s in model.signature.inputs if s.shape) else batch_size
    feeds = [tuple(torch.from_numpy(b[n]) for n in names) for b in data.batches(batch_size)]
    layers = torch_layers(model)

    def run() -> list[np.ndarray]:
        with torch.inference_mode():
            return [flatten_outputs(module(*f))[0].float().numpy() for f in feeds]

    seen: dict[str, list[np.ndarray]] = {name: [] for name in layers}

    def recorder(name):
        return lambda _m, args: seen[name].append(args[0].detach().float().numpy().copy())

    handles = [m.register_forward_pre_hook(recorder(name)) for name, m in layers.items()]
    try:
        reference = run()
    finally:
        for h in handles:
            h.remove()

    found = []
    for name, layer in layers.items():
        inputs = seen[name]
        # a layer whose forward never runs (MultiheadAttention's out_proj: its parent uses the weight in a
        # functional call) has no input to hook: its weights' quantization is measured alone
        lo = min(float(v.min()) for v in inputs) if inputs else 0.0
        hi = max(float(v.max()) for v in inputs) if inputs else 0.0

        def quantize_input(_m, args, lo=lo, hi=hi):
            x = args[0]
            a, b = (float(x.min()), float(x.max())) if dynamic else (lo, hi)
            return (torch.from_numpy(fake_quant_activation(x.detach().numpy(), a, b)), *args[1:])

        original = layer.weight.data
        layer.weight.data = torch.from_numpy(_fake_quant_weight(original.numpy()))
        handle = layer.register_forward_pre_hook(quantize_input)
        try:
            error = _relative_error(run(), reference)
        finally:
            handle.remove()
            layer.weight.data = original
        found.append(LayerSensitivity(name, type(layer).__name__, error, _outlier_ratio(inputs) if inputs else 0.0))
    return found


def _measure_keras(model: Model, data: Dataset, dynamic: bool, batch_size: int) -> list[LayerSensitivity]:
    """Keras 3 sources: the same measurement, eagerly through a clone of the functional model that shares its
    layers and fake-quantizes the input of the one layer under measurement (clone_model's call_function)."""
    import keras

    keras_model = model.extra["keras_model"]
    layers = keras_layers(model)
    names = model.signature.input_names
    feeds = [[b[n] for n in names] for b in data.batches(batch_size)]
    single = keras_model.inputs[0] if len(keras_model.inputs) == 1 else keras_model.inputs
    probe = keras.Model(single, [layer.input for layer in layers.values()])
    seen: dict[str, list[np.ndarray]] = {name: [] for name in layers}
    for feed in feeds:
        for name, x in zip(layers, probe(feed if len(feed) > 1 else feed[0], training=False)):
            seen[name].append(keras.ops.convert_to_numpy(x))
    measuring: dict[str, Any] = {"layer": None, "range": (0.0, 0.0)}

    def call(layer, *args, **kwargs):
        if layer.name == measuring["layer"]:
            x = keras.ops.convert_to_numpy(args[0])
            lo, hi = (float(x.min()), float(x.max())) if dynamic else measuring["range"]
            args = (keras.ops.convert_to_tensor(fake_quant_activation(x, lo, hi)), *args[1:])
        return layer(*args, **kwargs)

    clone = keras.models.clone_model(keras_model, clone_function=lambda layer: layer, call_function=call)

    def run() -> list[np.ndarray]:
        return [keras.ops.convert_to_numpy(_first(clone(f if len(f) > 1 else f[0], training=False))) for f in feeds]

    reference = run()
    found = []
    for name, layer in layers.items():
        inputs = seen[name]
        measuring.update(layer=name, range=(min(float(v.min()) for v in inputs), max(float(v.max()) for v in inputs)))
        kernel = _keras_kernel(layer)
        original = kernel.numpy()
        kernel.assign(_fake_quant_keras_kernel(original, depthwise="Depthwise" in type(layer).__name__))
        try:
            error = _relative_error(run(), reference)
        finally:
            kernel.assign(original)
            measuring["layer"] = None
        found.append(LayerSensitivity(name, type(layer).__name__, error, _outlier_ratio(inputs)))
    return found


def _fake_quant_keras_kernel(w: np.ndarray, depthwise: bool) -> np.ndarray:
    """A Keras kernel as int8 would hold it: output channels are its last axis (a depthwise kernel's last two,
    channels times multiplier)."""
    channels_last = w.reshape(*w.shape[:-2], -1) if depthwise else w
    quantized = np.moveaxis(_fake_quant_weight(np.moveaxis(channels_last, -1, 0)), 0, -1)
    return quantized.reshape(w.shape)


def _first(outputs: Any) -> Any:
    return outputs[0] if isinstance(outputs, (list, tuple)) else outputs


def _measure_onnx(model: Model, data: Dataset, dynamic: bool, batch_size: int) -> list[LayerSensitivity]:
    """ONNX sources: the same measurement with ONNX Runtime, one session per layer (weights swapped,
    a fake-quantized copy of the input fed through an added graph input)."""
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper

    graph_model = onnx.ModelProto()
    graph_model.CopyFrom(model.obj)
    graph = graph_model.graph
    inits = {i.name: i for i in graph.initializer}
    nodes = onnx_layers(graph)
    if not nodes:
        return []
    outputs = [o.name for o in graph.output]
    probes = sorted({n.input[0] for n in nodes} - set(outputs))
    graph.output.extend(onnx.ValueInfoProto(name=t) for t in probes)
    session = ort.InferenceSession(graph_model.SerializeToString(), providers=["CPUExecutionProvider"])
    batches = list(data.batches(batch_size))
    runs = [dict(zip(outputs + probes, session.run(outputs + probes, b))) for b in batches]
    reference = [r[outputs[0]] for r in runs]
    found = []
    for node in nodes:
        x_name, w_name = node.input[0], node.input[1]
        inputs = [r[x_name] for r in runs]
        lo, hi = min(float(v.min()) for v in inputs), max(float(v.max()) for v in inputs)
        w = numpy_helper.to_array(inits[w_name])
        # MatMul weights are (in, out): their output channels are the last axis
        wq = _fake_quant_weight(w.T).T if node.op_type == "MatMul" else _fake_quant_weight(w)
        variant = onnx.ModelProto()
        variant.CopyFrom(model.obj)
        feed_name = f"{x_name}__edgekit_fq"
        for init in variant.graph.initializer:
            if init.name == w_name:
                init.CopyFrom(numpy_helper.from_array(wq, w_name))
        for n in variant.graph.node:
            if n.name == node.name and list(n.input) == list(node.input):
                n.input[0] = feed_name
        variant.graph.input.extend([onnx.ValueInfoProto(name=feed_name)])
        probe_model = _with_typed_input(variant, feed_name, inputs[0])
        sess = ort.InferenceSession(probe_model.SerializeToString(), providers=["CPUExecutionProvider"])
        got = []
        for b, x in zip(batches, inputs):
            a, z = (float(x.min()), float(x.max())) if dynamic else (lo, hi)
            got.append(sess.run([outputs[0]], {**b, feed_name: fake_quant_activation(x, a, z)})[0])
        found.append(LayerSensitivity(node.name, node.op_type, _relative_error(got, reference), _outlier_ratio(inputs)))
    return found


def _with_typed_input(model, name: str, example: np.ndarray):
    import onnx
    from onnx import helper

    for vi in model.graph.input:
        if vi.name == name:
            vi.CopyFrom(
                helper.make_tensor_value_info(
                    name, helper.np_dtype_to_tensor_dtype(example.dtype), [None] * example.ndim
                )
            )
    onnx.checker.check_model(model, full_check=False)
    return model


def resolve_patterns(patterns: tuple[str, ...], layers: list[str]) -> list[str]:
    """The layers `patterns` name (exact names or fnmatch globs), in the order given; a pattern that names
    no layer is a usage error listing close names."""
    chosen: list[str] = []
    for pattern in patterns:
        hits = [name for name in layers if name == pattern or fnmatch.fnmatchcase(name, pattern)]
        if not hits:
            close = difflib.get_close_matches(pattern, layers, n=5, cutoff=0.4)
            raise UsageError(
                f"--keep-float {pattern!r} names no quantizable layer of this model.",
                hint=("Close names: " + ", ".join(close) if close else f"Its layers: {', '.join(layers[:8])} ...")
                + " (--report-sensitivity lists them all; globs like 'encoder.*.output.dense' work).",
            )
        chosen.extend(h for h in hits if h not in chosen)
    return chosen
