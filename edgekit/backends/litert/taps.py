"""A .tflite file run in LiteRT with every tensor kept, and its FULLY_CONNECTED/CONV ops as weighted layers.

XNNPACK (LiteRT's default delegate) frees the tensors inside its partitions, so the file runs on LiteRT's
builtin kernels here; the diff says so. Integer tensors are dequantized with their scale and zero point.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.backends.litert.runner import LiteRTRunner, dequantize
from edgekit.backends.litert.tflite_file import WEIGHTED_OPS, _names, _op_names, _unpack
from edgekit.backends.taps import LayerTaps, TapLayer, quantization_words
from edgekit.sidecar import ArtifactIO

_OUT_AXIS = {"FULLY_CONNECTED": 0, "CONV_2D": 0, "DEPTHWISE_CONV_2D": 3}  # OHWI filters; depthwise is 1HWC
_NUMPY = {"FLOAT32": np.float32, "FLOAT16": np.float16, "INT8": np.int8, "UINT8": np.uint8}


class _KeepingRunner(LiteRTRunner):
    """The LiteRT runner on builtin kernels with every tensor preserved, collecting the ones asked for."""

    def __init__(self, path: Path, io: ArtifactIO | None, wanted: list[int]) -> None:
        super().__init__(path, io)
        self.wanted = wanted
        self.kept: list[dict[int, np.ndarray]] = []
        self.details: dict[int, dict[str, Any]] = {}  # the wanted tensors' scale and zero point, read once

    def options(self, litert: Any) -> dict[str, Any]:
        return {
            "experimental_preserve_all_tensors": True,
            "experimental_op_resolver_type": litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        }

    def _invoke(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        outputs = super()._invoke(arrays)
        if not self.details:
            wanted = set(self.wanted)
            self.details = {d["index"]: d for d in self.interpreter.get_tensor_details() if d["index"] in wanted}
        self.kept.append({i: dequantize(self.interpreter.get_tensor(i), self.details[i]) for i in self.wanted})
        return outputs


class TFLiteTaps(LayerTaps):
    runtime = "litert"
    note = "LiteRT ran on its builtin kernels (XNNPACK frees the tensors inside its partitions)"

    def __init__(self, path: Path, io: ArtifactIO | None = None) -> None:
        self.path, self.io = Path(path), io
        schema, model, graph = _unpack(self.path)
        op_names, types = _op_names(schema, model), _names(schema.TensorType)
        activations = _names(schema.ActivationFunctionType)
        producer = {o: op for op in graph.operators or [] for o in op.outputs}
        self._layers: list[TapLayer] = []
        self._indices: dict[str, tuple[int, int]] = {}
        for op in graph.operators or []:
            kind = op_names[op.opcodeIndex]
            if kind not in WEIGHTED_OPS or len(op.inputs) < 2:
                continue
            w_index = op.inputs[1]
            source = producer.get(w_index)
            if source is not None and op_names[source.opcodeIndex] == "DEQUANTIZE":  # fp16 weights
                w_index = source.inputs[0]
            weight = _constant(model, graph.tensors[w_index], types)
            if weight is None:
                continue
            value, stored = weight
            data_in, out = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
            name = _text(out.name)
            fused = getattr(op.builtinOptions, "fusedActivationFunction", 0)
            act = activations.get(fused, "NONE")
            quantization = quantization_words(stored, types.get(data_in.type, "").lower())
            self._layers.append(
                TapLayer(
                    name,
                    kind,
                    value,
                    _OUT_AXIS[kind],
                    (_text(data_in.name), name),
                    quantization,
                    None if act == "NONE" else act,
                )
            )
            self._indices[name] = (op.inputs[0], op.outputs[0])
        self.runner: _KeepingRunner | None = None

    @property
    def layers(self) -> list[TapLayer]:
        return self._layers

    def __enter__(self) -> TFLiteTaps:
        wanted = sorted({i for pair in self._indices.values() for i in pair})
        self.runner = _KeepingRunner(self.path, self.io, wanted)
        self.runner.activate()
        return self

    def __exit__(self, *exc) -> None:
        if self.runner is not None:
            self.runner.deactivate()
            self.runner = None

    def run(self, feed: Mapping[str, np.ndarray]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        assert self.runner is not None, "TFLiteTaps used outside its context"
        self.runner.kept = []
        self.runner.infer({s.name: feed[s.name] for s in self.runner.input_specs()})
        slices = self.runner.kept  # one per batch slice where the file's batch is fixed
        joined = {i: np.concatenate([s[i] for s in slices]) if len(slices) > 1 else slices[0][i] for i in slices[0]}
        return {name: (joined[a], joined[b]) for name, (a, b) in self._indices.items()}


def _text(name: Any) -> str:
    return name.decode() if isinstance(name, bytes) else str(name)


def _constant(model: Any, tensor: Any, types: dict[int, str]) -> tuple[np.ndarray, str] | None:
    """A constant tensor's float value (dequantized per channel where stored as integers) and its stored type."""
    raw = model.buffers[tensor.buffer].data if tensor.buffer < len(model.buffers) else None
    kind = types.get(tensor.type, "")
    if raw is None or not len(raw) or kind not in _NUMPY:
        return None
    values = np.frombuffer(bytes(bytearray(raw)), dtype=_NUMPY[kind]).reshape(tuple(tensor.shape))
    q = tensor.quantization
    if kind.startswith(("INT", "UINT")) and q is not None and q.scale is not None and len(q.scale):
        scale = np.asarray(q.scale, np.float32)
        zero = np.asarray(q.zeroPoint if q.zeroPoint is not None else np.zeros_like(scale), np.float32)
        shape = [-1 if d == q.quantizedDimension else 1 for d in range(values.ndim)] if scale.size > 1 else []
        per = "per-channel" if scale.size > 1 else "per-tensor"
        return ((values - zero.reshape(shape)) * scale.reshape(shape)).astype(np.float32), f"int8 {per}"
    return values.astype(np.float32), kind.lower()
