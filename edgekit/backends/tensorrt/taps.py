"""`edgekit diff` for TensorRT engines: an engine holds no names of its intermediate tensors once built (fused
layers, reformatted copies), so the diff rebuilds it from the TensorRT-ready ONNX it was built from (named in its
sidecar, checked by hash), with the same builder flags and profiles and each weighted layer's input and output
marked as network outputs, the way Polygraphy marks every tensor. The layers and their weights are the ONNX's;
the values are the rebuilt engine's, on this machine's GPU. Marking a tensor stops TensorRT fusing across it, so
the rebuilt engine's final outputs are compared with the shipped engine's and the report says how far apart."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.backends.onnxruntime.taps import OnnxTaps
from edgekit.backends.taps import LayerTaps, TapLayer, rebuilt_gap


class TensorRTTaps(LayerTaps):
    runtime = "tensorrt"

    def __init__(self, path: Path) -> None:
        from edgekit.backends.tensorrt.engine import engine_onnx

        self.path = path
        self.onnx_file, self.facts = engine_onnx(path)  # refused here, before any work, where it cannot run
        self.onnx = OnnxTaps(self.onnx_file)  # the layers, their weights and tensor names
        self.session: Any = None
        self.checked: float | None = None
        self.note = None

    @property
    def layers(self) -> list[TapLayer]:
        return self.exposed if self.session is not None else self.onnx.layers

    def __enter__(self) -> TensorRTTaps:
        from edgekit._lazy import require
        from edgekit.backends.tensorrt.engine import tapped_engine
        from edgekit.backends.tensorrt.worker_loader import EngineSession

        tensors = tuple(dict.fromkeys(t for layer in self.onnx.layers for t in layer.tensors if t))
        with tempfile.TemporaryDirectory(prefix="edgekit-trt-diff-") as tmp:
            engine, marked = tapped_engine(self.onnx_file, self.facts, tensors, Path(tmp))
            trt = require("tensorrt", "Diffing a TensorRT engine")
            self.session = EngineSession(trt, str(engine))
        have = {*marked, *self.session.outputs, *self.session.inputs}
        # a layer whose tensors the parser folded away cannot be read: the diff lists it as unmatched
        self.exposed = [layer for layer in self.onnx.layers if all(t in have for t in layer.tensors if t)]
        return self

    def __exit__(self, *exc) -> None:
        if self.session is not None:
            self.session.close()
            self.session = None

    def run(self, feed: Mapping[str, np.ndarray]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        values = self.session.run({k: feed[k] for k in self.session.inputs})
        if self.checked is None:
            self._check(feed, values)
        got = lambda name: np.asarray(values[name] if name in values else feed[name], dtype=np.float32)
        return {layer.name: (got(layer.tensors[0]), got(layer.tensors[1])) for layer in self.exposed}

    def _check(self, feed: Mapping[str, np.ndarray], values: dict[str, np.ndarray]) -> None:
        """The rebuilt engine's outputs against the shipped engine's on the first batch, for the report."""
        from edgekit.backends.tensorrt.runner import TensorRTRunner

        with TensorRTRunner(self.path) as runner:
            shipped = runner.infer(dict(feed))
        self.checked, said = rebuilt_gap(list(shipped.values()), [values[name] for name in shipped])
        self.note = (
            "a TensorRT engine keeps no intermediate tensors: the layers are read from the engine rebuilt from its "
            "ONNX with the same flags and profiles, each layer's tensors marked as outputs (which stops fusion "
            f"across them); its outputs on these inputs are {said}"
        )
