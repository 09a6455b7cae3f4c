"""The Keras source with its Dense/Conv layers' inputs and outputs as outputs of one sub-model. A Keras
layer's output includes its activation (Dense(activation="relu")): the layer says so, and the comparison
applies it to a runtime op that left it to the next one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from edgekit.backends.taps import LayerTaps, TapLayer
from edgekit.errors import UsageError
from edgekit.sources.base import Model

_KINDS = {"Dense": 1, "Conv1D": 2, "Conv2D": 3, "DepthwiseConv2D": 2}  # kernel axis of the output channels
_ACTIVATIONS = {
    "relu": "RELU",
    "relu6": "RELU6",
    "tanh": "TANH",
    "sigmoid": "SIGMOID",
    "swish": "SWISH",
    "silu": "SWISH",
}


class KerasTaps(LayerTaps):
    runtime = "tensorflow"

    def __init__(self, model: Model) -> None:
        keras_model = model.extra.get("keras_model")
        if keras_model is None:
            raise UsageError(
                f"edgekit diff cannot read the layers of the SavedModel {model.source}: it keeps no Keras layers.",
                hint="Diff against the .keras or .h5 file it came from, or another exported file (--reference FILE).",
            )
        self.model = model
        self.keras = [layer for layer in keras_model.layers if type(layer).__name__ in _KINDS]
        norms = {id(n.input): n for n in keras_model.layers if type(n).__name__ == "BatchNormalization"}
        self._layers = [self._layer(layer, norms.get(id(layer.output))) for layer in self.keras]
        tensors = [t for layer in self.keras for t in (layer.input, layer.output)]
        self.probe = type(keras_model)(inputs=keras_model.inputs, outputs=tensors)

    def _layer(self, layer: Any, norm: Any) -> TapLayer:
        kind = type(layer).__name__
        kernel = np.asarray(layer.get_weights()[0], np.float32)
        if kind == "DepthwiseConv2D":  # (kh, kw, in, multiplier) -> (kh, kw, in * multiplier)
            kernel = kernel.reshape((*kernel.shape[:2], -1))
        bias = np.asarray(layer.get_weights()[1], np.float32) if getattr(layer, "use_bias", False) else None
        activation = _ACTIVATIONS.get(getattr(getattr(layer, "activation", None), "__name__", ""))
        folded = _batch_norm(norm) if norm is not None and activation is None else None
        return TapLayer(layer.name, kind, kernel, _KINDS[kind], bias=bias, activation=activation, batch_norm=folded)

    @property
    def layers(self) -> list[TapLayer]:
        return self._layers

    def run(self, feed: Mapping[str, np.ndarray]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        from edgekit.layerdiff.torch_taps import by_signature

        values = self.probe(by_signature(self.model.signature, feed), training=False)
        arrays = [np.asarray(v, np.float32) for v in values]
        return {layer.name: (arrays[2 * k], arrays[2 * k + 1]) for k, layer in enumerate(self._layers)}


def _batch_norm(norm: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """A BatchNormalization over the last axis as (scale, shift) per channel, at inference."""
    if norm.axis not in (-1, [-1], len(norm.input.shape) - 1, [len(norm.input.shape) - 1]):
        return None
    mean, variance = (np.asarray(v, np.float64) for v in (norm.moving_mean, norm.moving_variance))
    gamma = np.asarray(norm.gamma, np.float64) if norm.scale else np.ones_like(mean)
    beta = np.asarray(norm.beta, np.float64) if norm.center else np.zeros_like(mean)
    scale = gamma / np.sqrt(variance + norm.epsilon)
    return scale.astype(np.float32), (beta - mean * scale).astype(np.float32)
