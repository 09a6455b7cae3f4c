"""ExecuTorch runner (.pte) through the runtime's Python bindings; input names come from the sidecar.

The program is exported at batch 1 (every shape fixed), so a larger feed runs in slices of the
program's own input size.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

from edgekit._lazy import require
from edgekit.artifact import read_sidecar
from edgekit.errors import ModelLoadError
from edgekit.quiet import quiet
from edgekit.runners.base import Runner
from edgekit.spec import TensorSpec


class ExecuTorchRunner(Runner):
    name = "executorch"

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        super().__init__()
        self.path = Path(path)
        tensors = (read_sidecar(self.path) or {}).get("tensors", {})
        self.specs = tuple(TensorSpec.from_json(t) for t in tensors.get("inputs", []))
        self.outputs = [o["name"] for o in tensors.get("outputs", [])]
        self.method = None

    def activate_impl(self) -> None:
        if not self.specs:
            raise ModelLoadError(f"{self.path} has no sidecar with its input tensors; export it with edgekit.")
        with quiet():
            runtime = require("executorch.runtime", "Running a .pte file")
            try:
                program = runtime.Runtime.get().load_program(str(self.path))
                self.method = program.load_method("forward")
            except Exception as e:
                raise ModelLoadError(f"ExecuTorch cannot load {self.path}: {str(e).splitlines()[0][:300]}") from None
        meta = self.method.metadata
        self.fixed_batch = int(meta.input_tensor_meta(0).sizes()[0]) if meta.num_inputs() else 1

    def deactivate_impl(self) -> None:
        self.method = None

    def input_specs_impl(self) -> tuple[TensorSpec, ...]:
        return self.specs

    def output_names_impl(self) -> list[str]:
        return self.outputs

    def infer_impl(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        arrays = [np.ascontiguousarray(feed[s.name]) for s in self.specs]
        n, step = len(arrays[0]), self.fixed_batch
        if n % step:
            raise ModelLoadError(f"{self.path} has a fixed batch of {step}; a batch of {n} does not split into it.")
        parts = []
        for i in range(0, n, step):
            out = self.method.execute([torch.from_numpy(a[i:i + step]).contiguous() for a in arrays])
            parts.append([t.float().numpy() if t.is_floating_point() else t.numpy() for t in out])
        names = self.outputs if len(self.outputs) == len(parts[0]) else [f"output_{k}" for k in range(len(parts[0]))]
        return {name: np.concatenate([p[k] for p in parts]) for k, name in enumerate(names)}
