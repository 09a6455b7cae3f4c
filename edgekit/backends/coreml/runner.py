"""Core ML runner: predicts with coremltools on macOS; elsewhere opening one is refused with how to run the file
(Core ML exists only on Apple's OSes) and what an export checks instead."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.backends.coreml.stack import CHECKED_INSTEAD, HOW_TO_RUN, coremltools, why_not_here
from edgekit.backends.coreml.worker_loader import open_model, tensors
from edgekit.errors import ModelLoadError, UsageError, first_line
from edgekit.runners.base import Runner
from edgekit.sidecar import ArtifactIO
from edgekit.spec import TensorSpec


class CoreMLUnavailableError(UsageError):
    """A Core ML package asked to run on a machine without Core ML (exit 2)."""


def refuse_here(path: Path) -> CoreMLUnavailableError:
    """The error for running `path` here: why not, how to run it, and what was checked here instead."""
    why = why_not_here() or "Core ML is not available here"
    return CoreMLUnavailableError(
        f"Cannot run {path} here: {why}.", hint=f"{HOW_TO_RUN.replace('FILE', str(path))} {CHECKED_INSTEAD}"
    )


def open_coreml(path: Path, io: ArtifactIO | None, threads: int | None = None) -> CoreMLRunner:
    if why_not_here() is not None:
        raise refuse_here(path)
    return CoreMLRunner(path, io, threads)


class CoreMLRunner(Runner):
    name = "coreml"

    def __init__(self, path: str | Path, io: ArtifactIO | None = None, threads: int | None = None) -> None:
        super().__init__()
        self.path, self.io = Path(path), io  # Core ML picks its own threads
        self.model: Any = None
        self.file_specs: list[tuple[str, str, list[int]]] = []
        self.outputs: list[str] = []

    def activate_impl(self) -> None:
        ct = coremltools("Running a Core ML package")
        try:
            spec, self.model, _ = open_model(ct, str(self.path))
        except RuntimeError as e:
            raise ModelLoadError(f"Core ML cannot load {self.path}: {first_line(e)}") from None
        self.file_specs, self.outputs = tensors(spec)

    def deactivate_impl(self) -> None:
        self.model = None

    def input_specs_impl(self) -> tuple[TensorSpec, ...]:
        if self.io is not None and self.io.input_specs():
            return self.io.input_specs()
        return tuple(TensorSpec(n, d, tuple(x if x > 0 else f"dim{i}" for i, x in enumerate(s)))
                     for n, d, s in self.file_specs)  # fmt: skip

    def output_names_impl(self) -> list[str]:
        return self.io.output_names() if self.io is not None and self.io.outputs else self.outputs

    def infer_impl(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        kinds = {name: dtype for name, dtype, _ in self.file_specs}
        given = {k: np.ascontiguousarray(v, dtype=kinds.get(k, v.dtype)) for k, v in feed.items()}
        result = self.model.predict(given)
        return {name: _as_numpy(result[name]) for name in self.output_names_impl()}


def _as_numpy(value: Any) -> np.ndarray:
    """A prediction as numpy: floating types as float32 (fp16 packages return float16), others as they are."""
    array = np.asarray(value)
    return array.astype(np.float32) if np.issubdtype(array.dtype, np.floating) else array
