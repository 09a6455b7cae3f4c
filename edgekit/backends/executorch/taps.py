"""An ExecuTorch program (.pte) seen layer by layer.

XNNPACK runs a lowered program as one delegate call and keeps every intermediate inside it, so `edgekit diff`
rebuilds the program from the PyTorch source with the recipe its sidecar records (the device's plan, the same
calibration samples, the same layers kept float, the shapes it was captured at), with each weighted layer's
input and output added as program outputs (ExecuTorch's intermediate_output_tap: the tapped values leave the
delegate, the kernels stay XNNPACK's). Its own outputs are compared with the file's first: the layers are only
as good as that equality, and the report says it.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from edgekit._lazy import require
from edgekit.backends.taps import LayerTaps, TapLayer, quantization_words, rebuilt_gap
from edgekit.errors import DataError, UsageError
from edgekit.sidecar import ArtifactIO, Sidecar
from edgekit.sources.base import Model
from edgekit.spec import Signature

_LAYERS = {"aten.linear.default": "Linear", "aten.conv1d.default": "Conv1d", "aten.conv2d.default": "Conv2d"}
_ACTIVATIONS = {"aten.relu.default": "RELU", "aten.relu_.default": "RELU"}
_STATIC_Q = "quantized_decomposed.quantize_per_tensor.default"
_STATIC_DQ = "quantized_decomposed.dequantize_per_tensor.default"
_DYNAMIC_DQ = "quantized_decomposed.dequantize_per_tensor.tensor"
_CHANNEL_DQ = "quantized_decomposed.dequantize_per_channel.default"


@dataclass
class _Probe:
    """Where one layer's tensors are read in the rebuilt program: a tapped node, or a graph input's name."""

    layer: TapLayer
    source: Any
    output: Any


class ExecuTorchTaps(LayerTaps):
    runtime = "executorch"

    def __init__(self, path: Path, io: ArtifactIO | None) -> None:
        from edgekit.sidecar import read_sidecar

        sidecar = read_sidecar(path)
        if sidecar is None or io is None:
            raise UsageError(
                f"{path.name} has no sidecar: edgekit diff rebuilds an ExecuTorch program from the recipe its "
                "sidecar records (XNNPACK keeps the intermediates inside its delegate).",
                hint="Export it again with edgekit export, which writes the sidecar beside it.",
            )
        self.path, self.io, self.sidecar = path, io, sidecar
        self.probes: list[_Probe] | None = None
        self.method: Any = None
        self.taps: dict[str, int] = {}  # tapped node name -> program output index
        self.checked: float | None = None  # how far the rebuilt program's outputs are from the file's (relative)
        self.note = None

    def bind_reference(self, reference: LayerTaps) -> None:
        model = getattr(reference, "model", None)
        if reference.runtime != "torch" or not isinstance(model, Model):
            raise UsageError(
                f"{self.path.name} is an ExecuTorch program: edgekit diff rebuilds it with its layers exposed from "
                "the PyTorch source it came from, which --reference must name.",
                hint="Pass --reference SOURCE (with --weights for a package.module:factory).",
            )
        self._rebuild(model)

    @property
    def layers(self) -> list[TapLayer]:
        if self.probes is None:
            raise UsageError(
                f"{self.path.name} (ExecuTorch) can be diffed against its PyTorch source, not be the reference.",
                hint="Diff each file against the source instead.",
            )
        return [p.layer for p in self.probes]

    def _rebuild(self, model: Model) -> None:
        torch = require("torch", "Diffing an ExecuTorch program")
        require("pandas", "Diffing an ExecuTorch program (executorch.devtools imports it)")
        from edgekit.backends.executorch.convert import build_program
        from edgekit.sources.torch_source import example_args, is_prequantized

        plan, step = _recipe(self.sidecar)
        shapes = step.get("example_shapes") or {}
        quantized = plan.quantize and not is_prequantized(model)
        calibration = self._calibration(model) if quantized else None  # read as the export read it
        model = _at_shapes(model, shapes)
        self.inputs = model.signature.input_names
        args = tuple(a.contiguous() for a in example_args(model))  # as the export captured it
        keep = tuple((step.get("quantization") or {}).get("float_layers") or ())
        built = build_program(torch, model, plan, args, calibration, keep, tap=self._choose)
        self.taps = {t.node_name: t.output_index for t in built.taps}
        runtime = require("executorch.runtime", "Running a .pte file")
        self.buffer = bytes(built.program.buffer)  # the runtime reads the program from these bytes: keep them,
        self.program = runtime.Runtime.get().load_program(self.buffer)  # and the program its method runs in
        self.method = self.program.load_method("forward")
        self.batch = int(shapes[self.inputs[0]][0]) if self.inputs and shapes.get(self.inputs[0]) else 1

    def _calibration(self, model: Model):
        """The samples the file was calibrated on, as the sidecar records them (path, hash, count)."""
        from edgekit.data import read_data

        record = self.sidecar.calibration
        if record is None or not Path(record.path).is_file():
            raise DataError(
                f"{self.path.name} is int8: rebuilding it with its layers exposed needs the calibration data it was "
                f"made with{f', {record.path}, which is gone' if record else ''}.",
                hint="Export again with --calib DATA and keep DATA, or diff an onnx-* or tflite-* export instead.",
            )
        tokenizer = model.tokenizer_dir or (Path(self.sidecar.tokenizer) if self.sidecar.tokenizer else None)
        data = read_data(record.path, model.signature, tokenizer, record.samples)
        if data.sha256 != record.sha256:
            raise DataError(
                f"{record.path} changed since {self.path.name} was calibrated on it (its hash differs): the rebuilt "
                "program would not be the file.",
                hint="Export again with the data as it is now, then diff.",
            )
        return data

    def _choose(self, exported: Any) -> list[Any]:
        """Each Linear/Conv node with a module path, where its input and output are read, as probes; the nodes
        to tap."""
        placeholders = list(exported.graph_signature.user_inputs)
        self.probes = []
        for node in exported.graph.nodes:
            kind = _LAYERS.get(str(node.target)) if node.op == "call_function" else None
            path = _module_path(node)
            found = _constant_weight(exported, node.args[1]) if kind and path and len(node.args) > 1 else None
            if found is None or kind is None or path is None:
                continue
            static, dynamic = _target(node.args[0]) == _STATIC_DQ, _target(node.args[0]) == _DYNAMIC_DQ
            output, activation = _output(node, static)
            if output is None:
                continue
            source = _input(node.args[0])
            if getattr(source, "op", "") == "placeholder":
                source = self.inputs[placeholders.index(source.name)]
            weight, stored = found
            bias = _constant(exported, node.args[2]) if len(node.args) > 2 else None
            words = quantization_words(stored, "int8 dynamic" if dynamic else "int8" if static else "float")
            tensors = (source if isinstance(source, str) else source.name, output.name)
            layer = TapLayer(
                path, kind, weight, 0, tensors, words, activation,
                bias=None if bias is None else bias.numpy(), channel_axis=1 if kind.startswith("Conv") else -1,
            )  # fmt: skip
            self.probes.append(_Probe(layer, source, output))
        return [n for p in self.probes for n in (p.source, p.output) if not isinstance(n, str)]

    def run(self, feed: Mapping[str, np.ndarray]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        import torch

        from edgekit.runners.base import run_in_slices
        from edgekit.sources.torch_source import to_numpy

        if self.method is None or self.probes is None:
            raise UsageError(f"{self.path.name} was not rebuilt against its source before running.")
        arrays = [np.asarray(feed[name]) for name in self.inputs]

        def execute(part: list[np.ndarray]) -> list[np.ndarray]:
            return [to_numpy(t) for t in self.method.execute([torch.from_numpy(a).contiguous() for a in part])]

        outputs = run_in_slices(self.path, arrays, self.batch, execute)
        if self.checked is None:
            self._check(feed, outputs)
        values = {}
        for probe in self.probes:
            got = [self._value(end, outputs, feed) for end in (probe.source, probe.output)]
            values[probe.layer.name] = (got[0], got[1])
        return values

    def _value(self, end: Any, outputs: list[np.ndarray], feed: Mapping[str, np.ndarray]) -> np.ndarray:
        """A tapped tensor as float: an int8 one dequantized with the scale and zero point its node quantized to."""
        if isinstance(end, str):
            return np.asarray(feed[end], np.float32)
        value = outputs[self.taps[end.name]]
        if _target(end) == _STATIC_Q:
            scale, zero = float(end.args[1]), int(end.args[2])
            return ((value.astype(np.float32) - zero) * scale).astype(np.float32)
        return value.astype(np.float32)

    def _check(self, feed: Mapping[str, np.ndarray], outputs: list[np.ndarray]) -> None:
        """The rebuilt program's own outputs against the file's on the first batch, for the report."""
        from edgekit.backends.executorch.runner import ExecuTorchRunner

        with ExecuTorchRunner(self.path, self.io) as runner:
            file_out = list(runner.infer(dict(feed)).values())
        self.checked, said = rebuilt_gap(file_out, outputs)
        self.note = (
            "XNNPACK keeps the intermediates inside its delegate calls: the layers are read from "
            "the program rebuilt from the source with the sidecar's recipe, each layer's tensors added as outputs "
            f"(ExecuTorch's intermediate_output_tap); its outputs on these inputs are {said}"
        )


def _recipe(sidecar: Sidecar) -> tuple[Any, dict[str, Any]]:
    """The ExecuTorch plan the file was made with, and its conversion step's record (shapes, float layers)."""
    from edgekit.backends.executorch.plan import executorch_plan
    from edgekit.catalog import get_device, get_target
    from edgekit.catalog.resolve import resolve

    step = next((s.model_dump() for s in sidecar.route if s.step.endswith("->pte")), None)
    if step is None:
        raise UsageError(f"The sidecar of {sidecar.file} records no conversion to ExecuTorch to rebuild.")
    return executorch_plan(resolve(get_target(sidecar.target), get_device(sidecar.quantization.device))), step


def _at_shapes(model: Model, shapes: Mapping[str, list[int]]) -> Model:
    """The model with every input at the shape the program was captured at."""
    inputs = tuple(replace(s, shape=tuple(shapes.get(s.name, s.shape))) for s in model.signature.inputs)
    return replace(model, signature=Signature(inputs, model.signature.outputs))


def _target(node: Any) -> str:
    return str(getattr(node, "target", ""))


def _only_user(node: Any) -> Any:
    users = list(node.users)
    return users[0] if len(users) == 1 else None


def _module_path(node: Any) -> str | None:
    """The source module a node ran in (its nn_module_stack's innermost entry)."""
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return None
    last = list(stack.values())[-1]
    return str(last[0] if isinstance(last, tuple) else last) or None


def _output(layer: Any, static: bool) -> tuple[Any, str | None]:
    """The node holding a layer's output as the file computes it, and the activation fused into it: in float, the
    layer's (after the batch norm that follows a convolution: the torch reference reads it there); in static
    int8, the quantize after it and its activation (tapping the float output would split XNNPACK's quantized
    pattern); None where neither is there."""
    node = layer
    if not static:
        norm = _only_user(node)
        if norm is not None and "batch_norm" in _target(norm):  # aten.batch_norm, or a getitem of the tuple kind
            node = next((u for u in norm.users if u.target is operator.getitem and u.args[1] == 0), norm)
        return node, None
    activation = None
    after = _only_user(node)
    if after is not None and _target(after) in _ACTIVATIONS:
        activation, node, after = _ACTIVATIONS[_target(after)], after, _only_user(after)
    return (after, activation) if after is not None and _target(after) == _STATIC_Q else (None, None)


def _input(node: Any) -> Any:
    """What a layer reads, as a float tensor: the quantize before its static int8 input, the float tensor its
    dynamic int8 input is measured on (or the quantize before that), else the node (or graph input) itself."""
    if _target(node) == _STATIC_DQ:
        return node.args[0]
    if _target(node) == _DYNAMIC_DQ:
        node = node.args[0].args[0]
        return node.args[0] if _target(node) == _STATIC_DQ else node
    return node


def _constant(exported: Any, node: Any) -> Any:
    """The tensor a placeholder of the ExportedProgram stands for (a parameter, buffer or lifted constant)."""
    if getattr(node, "op", None) != "placeholder":
        return None
    sig = exported.graph_signature
    for mapping in (sig.inputs_to_parameters, sig.inputs_to_buffers, sig.inputs_to_lifted_tensor_constants):
        if node.name in mapping:
            key = mapping[node.name]
            value = exported.state_dict.get(key)
            return (value if value is not None else exported.constants.get(key)).detach()
    return None


def _constant_weight(exported: Any, node: Any) -> tuple[np.ndarray, str] | None:
    """A layer's weight as float values (dequantized where the program stores int8), and how it is stored."""
    if _target(node) == _CHANNEL_DQ:
        q, scale = _constant(exported, node.args[0]), _constant(exported, node.args[1])
        zero = _constant(exported, node.args[2]) if len(node.args) > 2 else None
        if q is None or scale is None:
            return None
        shape = [-1 if d == int(node.args[3]) % q.ndim else 1 for d in range(q.ndim)]
        zero_np = np.zeros(scale.shape) if zero is None else zero.numpy()
        value = (q.numpy().astype(np.float32) - zero_np.reshape(shape)) * scale.numpy().reshape(shape)
        return value.astype(np.float32), f"{str(q.dtype).removeprefix('torch.')} per-channel"
    if _target(node) == _STATIC_DQ:
        q = _constant(exported, node.args[0])
        if q is None:
            return None
        value = (q.numpy().astype(np.float32) - int(node.args[2])) * float(node.args[1])
        return value.astype(np.float32), f"{str(q.dtype).removeprefix('torch.')} per-tensor"
    value = _constant(exported, node)
    return None if value is None else (value.float().numpy(), "float32")
