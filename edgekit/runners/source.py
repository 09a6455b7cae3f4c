"""Runners for source models (torch modules, Keras/TF functions), so parity compares like with like
(edgekit.dispatch.source_runner picks one, and ONNX Runtime for an ONNX source)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from edgekit.runners.base import Runner
from edgekit.sources.base import Model
from edgekit.spec import TensorSpec, default_output_names


class TorchRunner(Runner):
    """Runs an nn.Module, ScriptModule or ExportedProgram on CPU, positional inputs in signature order."""

    name = "torch"

    def __init__(self, model: Model) -> None:
        super().__init__()
        self.model = model
        self.module: Any = None

    def activate_impl(self) -> None:
        from edgekit.sources.torch_source import torch_module

        self.module = torch_module(self.model.obj)

    def input_specs_impl(self) -> tuple[TensorSpec, ...]:
        return self.model.signature.inputs

    def output_names_impl(self) -> list[str]:
        return [o.name for o in self.model.signature.outputs]

    def infer_impl(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        from edgekit.sources.torch_source import flatten_outputs, to_numpy

        args = [torch.from_numpy(np.ascontiguousarray(feed[s.name])) for s in self.model.signature.inputs]
        with torch.inference_mode():
            out = self.module(*args)
        tensors = flatten_outputs(out)
        names = self.output_names_impl() or default_output_names(len(tensors))
        return {n: to_numpy(t) for n, t in zip(names, tensors)}


class KerasRunner(Runner):
    """Runs the traced tf.function that the Keras loader built."""

    name = "tensorflow"

    def __init__(self, model: Model) -> None:
        super().__init__()
        self.model = model

    def activate_impl(self) -> None:
        pass

    def input_specs_impl(self) -> tuple[TensorSpec, ...]:
        return self.model.signature.inputs

    def output_names_impl(self) -> list[str]:
        return [o.name for o in self.model.signature.outputs]

    def infer_impl(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        import tensorflow as tf

        args = [tf.constant(feed[s.name]) for s in self.model.signature.inputs]
        outs = self.model.obj(*args)
        return {n: np.asarray(o) for n, o in zip(self.output_names_impl(), outs)}
