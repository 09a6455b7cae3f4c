"""An OpenVINO IR run with its weighted ops' inputs and outputs added as model outputs.

A weighted op is MatMul, Convolution or GroupConvolution whose weight is a constant subgraph (a Constant, or
NNCF's int8 Constant -> Convert -> [Subtract] -> Multiply, or a compressed fp16 Constant -> Convert); the
subgraph is evaluated to the float weight the op uses. Its output is followed through a constant Add (the
bias, or a folded BatchNorm); its input is what it reads (a FakeQuantize's output in an int8 IR).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.backends.openvino.stack import import_stack
from edgekit.backends.taps import LayerTaps, TapLayer, quantization_words

_WEIGHTED = {"MatMul", "Convolution", "GroupConvolution"}


def _constant(output: Any) -> tuple[np.ndarray, str] | None:
    """The value of a constant subgraph feeding `output` (an op's input source), and how it is stored."""
    node = output.get_node()
    kind = node.get_type_name()
    if kind == "Constant":
        data = np.asarray(node.get_data())
        return data.astype(np.float32), str(data.dtype)
    parts = [_constant(i.get_source_output()) for i in node.inputs()]
    if any(p is None for p in parts):
        return None
    values = [p[0] for p in parts if p is not None]
    stored = next((p[1] for p in parts if p is not None and p[1] != "float32"), "float32")
    if kind == "Convert":
        return values[0], stored
    if kind == "Multiply":
        per = "per-channel" if min(v.size for v in values) > 1 else "per-tensor"
        return values[0] * values[1], f"{stored} {per}" if stored.startswith(("int", "uint")) else stored
    if kind == "Subtract":
        return values[0] - values[1], stored
    if kind == "Reshape":
        return values[0].reshape([int(d) for d in values[1]]), stored
    if kind == "Transpose":
        return np.transpose(values[0], [int(d) for d in values[1]]), stored
    return None


class OpenVINOTaps(LayerTaps):
    runtime = "openvino"
    note = "OpenVINO compiled the IR with the compared tensors as outputs, which can keep it from fusing across them"

    def __init__(self, path: Path) -> None:
        self.ov = import_stack("openvino", "Reading an OpenVINO IR (.xml)")
        self.path = Path(path)
        self.model = self.ov.Core().read_model(str(self.path))
        self._layers: list[TapLayer] = []
        self.ports: dict[str, tuple[Any, Any]] = {}  # layer -> (input port, output port)
        for op in self.model.get_ordered_ops():
            layer = self._layer(op) if op.get_type_name() in _WEIGHTED else None
            if layer is not None:
                self._layers.append(layer)
        self.request: Any = None

    @property
    def layers(self) -> list[TapLayer]:
        return self._layers

    def _layer(self, op) -> TapLayer | None:
        found = _constant(op.input(1).get_source_output())
        if found is None:
            return None
        weight, stored = found
        kind = op.get_type_name()
        if kind == "MatMul":
            if weight.ndim != 2:
                return None
            out_axis = 0 if op.get_attributes().get("transpose_b") else 1
        elif kind == "GroupConvolution":  # (groups, out/groups, in/groups, kh, kw) -> (out, in/groups, kh, kw)
            weight, out_axis = weight.reshape((-1, *weight.shape[2:])), 0
        else:
            out_axis = 0
        source = op.input(0).get_source_output()
        quantized_input = source.get_node().get_type_name() == "FakeQuantize"
        quantization = quantization_words(stored, "int8" if quantized_input else "float")
        out = op.output(0)
        users = list(out.get_target_inputs())
        if len(users) == 1:
            user = users[0].get_node()
            others = [i.get_source_output() for i in user.inputs() if i.get_source_output() != out]
            if user.get_type_name() == "Add" and all(_constant(o) is not None for o in others):
                out = user.output(0)  # the bias, or a BatchNorm folded into one
        name = op.get_friendly_name()
        self.ports[name] = (source, out)
        tensors = (source.get_node().get_friendly_name(), out.get_node().get_friendly_name())
        return TapLayer(name, kind, weight, out_axis, tensors, quantization, channel_axis=-1 if kind == "MatMul" else 1)

    def __enter__(self) -> OpenVINOTaps:
        from edgekit.backends.openvino.worker_loader import compile_config, placement

        self.model.add_outputs(list({self._key(port): port for pair in self.ports.values() for port in pair}.values()))
        # an output that already was one is not added twice: find each port among the model's outputs
        sources = [result.get_node().input(0).get_source_output() for result in self.model.outputs]
        self.position = {self._key(port): k for k, port in enumerate(sources)}
        core = self.ov.Core()
        device, precision = placement(core, self.model)
        self.compiled = core.compile_model(self.model, device, compile_config(device, None, precision))
        self.request = self.compiled.create_infer_request()
        return self

    def __exit__(self, *exc) -> None:
        self.request = self.compiled = None

    def run(self, feed: Mapping[str, np.ndarray]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        results = self.request.infer({p.get_any_name(): feed[p.get_any_name()] for p in self.model.inputs})
        got = lambda port: np.asarray(results[self.compiled.outputs[self.position[self._key(port)]]], np.float32)
        return {name: (got(a), got(b)) for name, (a, b) in self.ports.items()}

    @staticmethod
    def _key(port: Any) -> tuple[str, int]:
        return port.get_node().get_friendly_name(), port.get_index()
