"""The torch source with forward hooks on its Linear/Conv modules (a BatchNorm right after a convolution
belongs to it: exporters fold one into the other)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from edgekit.backends.taps import LayerTaps, TapLayer
from edgekit.errors import UsageError
from edgekit.sources.base import Model


class TorchTaps(LayerTaps):
    runtime = "torch"

    def __init__(self, model: Model) -> None:
        from edgekit.sensitivity import torch_layers

        self.model = model
        self.modules = torch_layers(model)
        if not self.modules:
            raise UsageError(
                f"The reference {model.source} has no Linear or Conv modules to compare "
                "(TorchScript and ExportedProgram sources keep no module tree).",
                hint="Compare with the nn.Module it came from (package.module:factory --weights W), or with "
                "another exported file (--reference FILE).",
            )
        self._layers = [
            TapLayer(name, type(m).__name__, m.weight.detach().numpy(), 0, bias=_bias(m), channel_axis=_channels(m))
            for name, m in self.modules.items()
        ]
        self._order: list[str] | None = None

    @property
    def layers(self) -> list[TapLayer]:
        if self._order is None:
            return self._layers
        by_name = {layer.name: layer for layer in self._layers}
        return [by_name[n] for n in self._order]

    @property
    def idle(self) -> list[str]:
        return [] if self._order is None else [n for n in self.modules if n not in self._order]

    def run(self, feed: Mapping[str, np.ndarray]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        import torch

        from edgekit.sources.torch_source import torch_module

        seen: dict[str, list[Any]] = {}
        owner: dict[int, str] = {}  # id of a layer's output tensor -> the layer (for the BatchNorm after it)

        def weighted(name: str):
            def hook(module, args, output):
                seen[name] = [args[0].detach(), output.detach()]
                owner[id(output)] = name

            return hook

        def batchnorm(module, args, output):
            name = owner.get(id(args[0]))
            if name is not None:
                seen[name][1] = output.detach()

        module = torch_module(self.model.obj)
        handles = [m.register_forward_hook(weighted(n)) for n, m in self.modules.items()]
        handles += [
            m.register_forward_hook(batchnorm)
            for m in module.modules()
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
        ]
        try:
            args = [torch.from_numpy(np.ascontiguousarray(a)) for a in by_signature(self.model.signature, feed)]
            with torch.inference_mode():
                module(*args)
        finally:
            for h in handles:
                h.remove()
        if self._order is None:
            self._order = list(seen)
        return {n: (_numpy(i), _numpy(o)) for n, (i, o) in seen.items()}


def by_signature(signature, feed: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """The feed's arrays in the signature's order: by name, or by position where the names differ (an IR
    names its input `input` where the torch source said `image`)."""
    inputs = signature.inputs
    if all(s.name in feed for s in inputs) or len(feed) != len(inputs):
        return [feed[s.name] for s in inputs]
    return list(feed.values())


def _channels(module) -> int:
    """The channel axis of its output: 1 for a convolution (NCHW), the last for a Linear."""
    return 1 if type(module).__name__.startswith("Conv") else -1


def _bias(module) -> np.ndarray | None:
    bias = getattr(module, "bias", None)
    return None if bias is None else bias.detach().float().numpy()


def _numpy(t) -> np.ndarray:
    return t.float().numpy() if t.is_floating_point() else t.numpy().astype(np.float32)
