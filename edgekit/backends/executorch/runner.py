"""ExecuTorch runner (.pte) through the runtime's Python bindings; input names come from the I/O description.

The program is exported at batch 1 (every shape fixed), so a larger feed runs in slices of the
program's own input size.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edgekit._lazy import require
from edgekit.errors import ModelLoadError, first_line
from edgekit.quiet import quiet
from edgekit.runners.base import Runner, run_in_slices
from edgekit.sidecar import ArtifactIO
from edgekit.spec import TensorSpec, default_output_names

# ExecuTorch reports a failed load as a bare code ("error: 0x:23"); the names and meanings of the codes a
# damaged or foreign file gets, from executorch/runtime/core/error.h
_LOAD_ERRORS = {
    0x12: "InvalidArgument: the file is empty or too short to be a program",
    0x20: "NotFound: the program has no 'forward' method",
    0x22: "AccessFailed: the file could not be read",
    0x23: "InvalidProgram: the bytes are not a complete ExecuTorch program (truncated, or another kind of file)",
    0x14: "OperatorMissing: the program uses an operator this runtime build does not have",
    0x30: "DelegateInvalidCompatibility: the program was built for another runtime version or backend",
}
_CODE = re.compile(r"error: 0x:?([0-9a-fA-F]+)")


def load_hint(message: str) -> str | None:
    """What ExecuTorch's error code in `message` means, and what to do about it."""
    found = _CODE.search(message)
    if found is None or int(found[1], 16) not in _LOAD_ERRORS:
        return None
    return f"ExecuTorch error {found[0].split()[-1]} is {_LOAD_ERRORS[int(found[1], 16)]}. Export the .pte again."


class ExecuTorchRunner(Runner):
    name = "executorch"

    def __init__(self, path: str | Path, io: ArtifactIO, threads: int | None = None) -> None:
        super().__init__()
        self.path = Path(path)
        self.specs, self.outputs = io.input_specs(), io.output_names()
        self.method: Any = None

    def activate_impl(self) -> None:
        with quiet():
            runtime = require("executorch.runtime", "Running a .pte file")
            try:
                program = runtime.Runtime.get().load_program(str(self.path))
                self.method = program.load_method("forward")
            except Exception as e:
                raise ModelLoadError(
                    f"ExecuTorch cannot load {self.path}: {first_line(e)}", hint=load_hint(str(e))
                ) from None
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

        from edgekit.sources.torch_source import to_numpy

        def execute(arrays: list[np.ndarray]) -> list[np.ndarray]:
            return [to_numpy(t) for t in self.method.execute([torch.from_numpy(a).contiguous() for a in arrays])]

        outputs = run_in_slices(self.path, [np.asarray(feed[s.name]) for s in self.specs], self.fixed_batch, execute)
        names = self.outputs if len(self.outputs) == len(outputs) else default_output_names(len(outputs))
        return dict(zip(names, outputs))
