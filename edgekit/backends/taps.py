"""What `edgekit diff` reads from a model: its weighted layers (Linear/Conv and their runtime ops), each
with its weights and the tensors going in and out of it on real inputs.

Every runtime that exposes intermediates implements `LayerTaps` (ONNX Runtime, LiteRT, OpenVINO, ExecuTorch, the
torch source); the matcher pairs layers of two models by their weights, which survive renaming, fusion and layout
changes.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np


@dataclass
class TapLayer:
    """One weighted layer as a model holds it."""

    name: str  # the source's module path, an ONNX node name, a TFLite output tensor name
    kind: str  # Linear, Conv2d, MatMul, Gemm, CONV_2D, FULLY_CONNECTED, ...
    weight: np.ndarray  # float values (dequantized where the file stores integers), in the model's own layout
    out_axis: int  # the weight axis of the output channels (torch: 0; ONNX MatMul: the last)
    tensors: tuple[str, ...] = ()  # the runtime tensors read: (input, output)
    # how the file computes it: "float", "w int8 per-channel · a int8" (w: its weights, a: its input activations)
    quantization: str = "float"
    activation: str | None = None  # an activation fused into the op's output (TFLite: RELU, RELU6)
    bias: np.ndarray | None = None  # the bias the layer adds (on the last axis of a Linear's output)
    bias_in_output: bool = True  # False: a fused op downstream adds it (ONNX Runtime's SkipLayerNormalization)
    channel_axis: int = -1  # the axis of the output channels in its output (1: an NCHW convolution)
    # the batch norm right after it in the source, as (scale, shift) per output channel: converters fold it in
    batch_norm: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def float_weights(self) -> bool:
        """Whether the file keeps its weights float (fp32 or fp16): a constant on its output is then a
        converter's fold, where in int8 weights it would be a wrong scale."""
        return self.quantization == "float" or self.quantization.startswith("w float")


def quantization_words(stored: str, activations: str | None = None) -> str:
    """How a file computes a layer, in the diff's words: "float", "w float16", "w int8 per-channel · a int8"
    (w: how its weights are stored; a: the activations an integer layer reads, where the runtime says)."""
    if stored == "float32":
        return "float"
    if activations is None or not stored.startswith(("int", "uint")):
        return f"w {stored}"
    return f"w {stored} · a {activations}"


def rebuilt_gap(file_outputs: list[np.ndarray], rebuilt_outputs: list[np.ndarray]) -> tuple[float, str]:
    """How far the outputs of a model rebuilt with its layers exposed are from the shipped file's on the same
    inputs (the largest difference relative to the file's largest value), and that in the report's words."""

    def relative(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(a))), 1e-12)) if a.size else 0.0

    pairs = zip(file_outputs, rebuilt_outputs)
    gap = max(relative(np.asarray(a, np.float32), np.asarray(b, np.float32)) for a, b in pairs)
    if gap < 1e-4:
        return gap, "equal to the file's" + (f" to float rounding ({gap:.1e} relative)" if gap else "")
    return gap, f"differing from the file's by {gap:.3g} (relative): read the layers with that in mind"


class LayerTaps(abc.ABC):
    """A model run with the inputs and outputs of its weighted layers exposed (a context manager)."""

    runtime: str = ""
    note: str | None = None  # what the comparison cannot see in this runtime (kernels swapped to expose tensors)

    @property
    @abc.abstractmethod
    def layers(self) -> list[TapLayer]:
        """The weighted layers, in execution order once `run` has run."""

    @property
    def idle(self) -> list[str]:
        """Layers the model holds but did not run on the inputs given (a pooler a classifier skips)."""
        return []

    @abc.abstractmethod
    def run(self, feed: Mapping[str, np.ndarray]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """One batch: each layer's (input, output) as float arrays, by layer name."""

    def bind_reference(self, reference: LayerTaps) -> None:
        """Called with the reference before the layers are read: a runtime whose file hides its intermediates
        (ExecuTorch's delegate) rebuilds it from the reference's source with them exposed."""
        return None

    def __enter__(self) -> LayerTaps:
        return self

    def __exit__(self, *exc) -> None:
        return None
