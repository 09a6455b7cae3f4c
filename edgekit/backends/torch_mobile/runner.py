"""PyTorch Mobile lite-interpreter runner (.ptl); input specs come from the I/O description (the file has none)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edgekit._lazy import require
from edgekit.errors import ModelLoadError, first_line
from edgekit.runners.base import Runner
from edgekit.sidecar import ArtifactIO
from edgekit.spec import TensorSpec, default_output_names


class LiteInterpreterRunner(Runner):
    name = "torch-lite"

    def __init__(self, path: str | Path, io: ArtifactIO, threads: int | None = None) -> None:
        super().__init__()
        self.path, self.threads = Path(path), threads
        self.specs, self.outputs = io.input_specs(), io.output_names()
        self.module: Any = None

    def activate_impl(self) -> None:
        torch = require("torch", "Running a .ptl file")
        from torch.jit.mobile import _load_for_lite_interpreter

        if self.threads:
            torch.set_num_threads(self.threads)
        try:
            self.module = _load_for_lite_interpreter(str(self.path))
        except Exception as e:
            raise ModelLoadError(f"The lite interpreter cannot load {self.path}: {first_line(e)}") from None

    def deactivate_impl(self) -> None:
        self.module = None

    def input_specs_impl(self) -> tuple[TensorSpec, ...]:
        return self.specs

    def output_names_impl(self) -> list[str]:
        return self.outputs

    def infer_impl(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        from edgekit.sources.torch_source import flatten_outputs, to_numpy

        with torch.inference_mode():
            out = self.module(*[torch.from_numpy(np.ascontiguousarray(feed[s.name])) for s in self.specs])
        tensors = flatten_outputs(out)
        names = self.outputs if len(self.outputs) == len(tensors) else default_output_names(len(tensors))
        return {n: to_numpy(t) for n, t in zip(names, tensors)}
