"""A PyTorch Mobile file (.ptl) seen layer by layer: the TorchScript program it holds, loaded with torch.jit,
its forward graph inlined and each weighted op's input and output added to what it returns.

The file keeps its module tree (every call is a `prim::CallMethod`); inlined, each Linear/Conv op reads its
weight through a chain of attribute lookups from the model, which names the module it belongs to. The graph is
the file's own: the same ops and kernels the lite interpreter runs (quantized::conv2d_relu, quantized::linear,
aten::linear), run by the full TorchScript interpreter, which lets a graph return more.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekit._lazy import require
from edgekit.backends.taps import LayerTaps, TapLayer, quantization_words
from edgekit.errors import ModelLoadError, UsageError, first_line
from edgekit.sidecar import ArtifactIO

# op kind -> (layer kind, how its input is computed, the activation fused into its output)
_OPS = {
    "aten::linear": ("Linear", "float", None),
    "aten::conv1d": ("Conv1d", "float", None),
    "aten::conv2d": ("Conv2d", "float", None),
    "quantized::linear": ("Linear", "static", None),
    "quantized::linear_relu": ("Linear", "static", "RELU"),
    "quantized::linear_dynamic": ("Linear", "dynamic", None),
    "quantized::conv1d": ("Conv1d", "static", None),
    "quantized::conv1d_relu": ("Conv1d", "static", "RELU"),
    "quantized::conv2d": ("Conv2d", "static", None),
    "quantized::conv2d_relu": ("Conv2d", "static", "RELU"),
}


_SHAPE_ONLY = ("aten::dim", "aten::size", "aten::len", "prim::shape")


@dataclass
class _Probe:
    layer: TapLayer
    index: int  # where its input sits among the extra values the graph returns (its output: the next one)


class TorchMobileTaps(LayerTaps):
    runtime = "torch-lite"
    note = (
        "the .ptl's TorchScript graph ran inlined in torch.jit (the lite interpreter cannot return more than the "
        "model does): the same ops and kernels"
    )

    def __init__(self, path: Path, io: ArtifactIO | None) -> None:
        torch = require("torch", "Diffing a .ptl file")
        if io is None:
            raise UsageError(
                f"{path.name} has no sidecar: a .ptl file does not say what its inputs are.",
                hint="Export it again with edgekit export, which writes the sidecar beside it.",
            )
        try:
            self.module = torch.jit.load(str(path))
        except Exception as e:
            raise ModelLoadError(f"torch.jit cannot read the TorchScript in {path}: {first_line(e)}") from None
        self.path, self.specs = path, io.input_specs()
        graph = self.module.forward.graph.copy()
        torch._C._jit_pass_inline(graph)
        self.probes: list[_Probe] = []
        values: list[Any] = []
        for node in graph.nodes():
            layer = self._layer(node)
            if layer is not None:
                self.probes.append(_Probe(layer, len(values)))
                values += [node.inputsAt(0), _output(node)]
        self.tapped = _returning(torch, graph, values)

    @property
    def layers(self) -> list[TapLayer]:
        return [p.layer for p in self.probes]

    def _layer(self, node: Any) -> TapLayer | None:
        """The TapLayer of a weighted op whose weight is an attribute of a module of the file, else None."""
        import torch

        found = _OPS.get(node.kind())
        if found is None or node.inputsSize() < 2:
            return None
        kind, computed, activation = found
        path = _attribute_path(node.inputsAt(1))
        if path is None:
            return None
        value = self.module
        for name in path:
            value = getattr(value, name)
        weight, bias = value.unpack() if hasattr(value, "unpack") else (value, None)
        if bias is None and node.kind().startswith("aten::") and node.inputsSize() > 2:
            bias = _constant_attribute(self.module, node.inputsAt(2))
        module_path = ".".join(p for p in path if p not in ("weight", "_packed_params"))
        if weight.is_quantized:
            per = "per-channel" if weight.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric) else ""
            stored = f"{str(weight.dtype).removeprefix('torch.q')} {per or 'per-tensor'}"
            words = quantization_words(stored, "int8 dynamic" if computed == "dynamic" else "uint8")
            weight = weight.dequantize()
        else:
            words = quantization_words("float32")
        tensors = (node.inputsAt(0).debugName(), _output(node).debugName())
        bias_values = None if bias is None else bias.detach().float().numpy()
        channels = 1 if kind.startswith("Conv") else -1
        weights = weight.detach().float().numpy()
        return TapLayer(module_path, kind, weights, 0, tensors, words, activation, bias_values, channel_axis=channels)

    def run(self, feed: Mapping[str, np.ndarray]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        import torch

        args = [torch.from_numpy(np.ascontiguousarray(feed[s.name])) for s in self.specs]
        with torch.inference_mode():
            returned = self.tapped(self.module._c, *args)
        extra = list(returned)[1:]
        return {p.layer.name: (_float(extra[p.index]), _float(extra[p.index + 1])) for p in self.probes}


def _output(node: Any) -> Any:
    """A weighted op's output as the torch reference reads it: after the batch norm that follows a float
    convolution (the reference's hook applies it too)."""
    out = node.output()
    users = [u.user for u in out.uses() if u.user.kind() not in _SHAPE_ONLY]  # a scripted BatchNorm checks dims
    if len(users) == 1 and users[0].kind() == "aten::batch_norm":
        return users[0].output()
    return out


def _attribute_path(value: Any) -> list[str] | None:
    """The attribute names from the model down to `value` (['encoder', 'layer', '0', ..., 'weight']), or None
    when it is not an attribute of the model."""
    names: list[str] = []
    while value.node().kind() == "prim::GetAttr":
        names.append(value.node().s("name"))
        value = value.node().inputsAt(0)
    return list(reversed(names)) if names and value.node().kind() == "prim::Param" else None


def _constant_attribute(module: Any, value: Any) -> Any:
    path = _attribute_path(value)
    if path is None:
        return None
    for name in path:
        module = getattr(module, name, None)
    return module


def _returning(torch, graph: Any, values: list[Any]) -> Any:
    """A function of the graph that returns (its own output, *values)."""
    ret = graph.return_node()
    returned = [ret.inputsAt(0), *values]
    pack = graph.create("prim::TupleConstruct", returned)
    pack.output().setType(torch._C.TupleType([v.type() for v in returned]))
    pack.insertBefore(ret)
    ret.replaceInput(0, pack.output())
    return torch._C._create_function_from_graph("forward_with_layers", graph)


def _float(tensor: Any) -> np.ndarray:
    return (tensor.dequantize() if tensor.is_quantized else tensor).detach().float().numpy()
