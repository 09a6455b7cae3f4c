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
from edgekit.errors import ModelLoadError
from edgekit.sidecar import ArtifactIO, read_sidecar

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
        readers: dict[int, list[Any]] = {}
        for op in graph.operators or []:
            for i in op.inputs:
                readers.setdefault(i, []).append(op)
        multiply = _Multiplies(model, graph, op_names, types, producer, readers) if _rescaled(self.path) else None
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
            tensors = (op.inputs[0], op.outputs[0])
            if multiply is not None and kind == "FULLY_CONNECTED":
                value, tensors = multiply.absorbed(value, *tensors)
            data_in, out = graph.tensors[tensors[0]], graph.tensors[tensors[1]]
            name = _text(out.name)
            fused = getattr(op.builtinOptions, "fusedActivationFunction", 0)
            act = activations.get(fused, "NONE")
            computed_on = graph.tensors[op.inputs[0]].type  # the layer's own input (a multiply's may be float)
            quantization = quantization_words(stored, types.get(computed_on, "").lower())
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
            self._indices[name] = tensors
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


def _rescaled(path: Path) -> bool:
    """Whether the file's sidecar says edgekit put per-channel multiplies around its layers (smoothing, output
    ranges): float multiplies by constants, which the taps then read as part of the layer they scale."""
    try:
        sidecar = read_sidecar(path)
    except ModelLoadError:
        return False
    steps = [s.model_dump() for s in sidecar.route] if sidecar is not None else []

    def notes(step: dict, key: str) -> dict:  # a step's record, or {} where it is absent or a sentence ("off ...")
        return step[key] if isinstance(step.get(key), dict) else {}

    return any(notes(s, "output_ranges").get("balanced") or notes(s, "smoothing").get("smoothed") for s in steps)


class _Multiplies:
    """A FULLY_CONNECTED layer's scaling by constants, one per channel, read back: a float MUL whose output is
    quantized for the layer's input (smoothing's division) and one after its dequantized output (an output
    range's factor). The layer computes with its weight times both, on the input before and the output after."""

    def __init__(self, model, graph, op_names, types, producer, readers) -> None:
        self.model, self.graph, self.op_names, self.types = model, graph, op_names, types
        self.producer, self.readers = producer, readers

    def absorbed(self, weight: np.ndarray, data_in: int, out: int) -> tuple[np.ndarray, tuple[int, int]]:
        """`weight` ([out, in]) with the multiplies around the layer folded in, and the tensors they read and
        write (the layer's own where there is none)."""
        after = self._after(out, weight.shape[0])
        if after is not None:
            out, factors = after
            weight = weight * factors[:, None]
        before = self._before(data_in, weight.shape[1])
        if before is not None:
            data_in, factors = before
            weight = weight * factors[None, :]
        return weight, (data_in, out)

    def _kind(self, op: Any) -> str:
        return self.op_names[op.opcodeIndex]

    def _factors(self, mul: Any, operand: int, channels: int) -> np.ndarray | None:
        """The MUL's constant operand, one value per channel, when its other operand is `operand`."""
        others = [i for i in mul.inputs if i != operand]
        if self._kind(mul) != "MUL" or len(others) != 1 or len(mul.inputs) != 2:
            return None
        constant = _constant(self.model, self.graph.tensors[others[0]], self.types)
        return None if constant is None or constant[0].size != channels else constant[0].ravel()

    def _after(self, out: int, channels: int) -> tuple[int, np.ndarray] | None:
        readers = self.readers.get(out, [])
        if len(readers) == 1 and self._kind(readers[0]) == "DEQUANTIZE":
            out, readers = readers[0].outputs[0], self.readers.get(readers[0].outputs[0], [])
        factors = self._factors(readers[0], out, channels) if len(readers) == 1 else None
        return None if factors is None else (readers[0].outputs[0], factors)

    def _before(self, data_in: int, channels: int) -> tuple[int, np.ndarray] | None:
        source = self.producer.get(data_in)
        if source is not None and self._kind(source) == "QUANTIZE":  # read by every layer of the group
            data_in, source = source.inputs[0], self.producer.get(source.inputs[0])
        if source is None or self._kind(source) != "MUL":
            return None
        for operand in source.inputs:
            factors = self._factors(source, operand, channels)
            if factors is not None:
                return operand, factors
        return None


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
