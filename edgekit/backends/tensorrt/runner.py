"""TensorRT engine runner (.plan/.engine), behind the shared Runner interface; needs a GPU, tensorrt and
cuda-python. Refuses an engine built for another TensorRT version or GPU before deserializing it."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edgekit._lazy import require
from edgekit.backends.tensorrt.worker_loader import EngineSession, compute_capability
from edgekit.errors import ModelLoadError, first_line
from edgekit.runners.base import Runner
from edgekit.sidecar import ArtifactIO, read_sidecar
from edgekit.spec import TensorSpec


class TensorRTRunner(Runner):
    name = "tensorrt"

    def __init__(self, path: str | Path, io: ArtifactIO | None = None, threads: int | None = None) -> None:
        super().__init__()
        self.path = Path(path)
        self.session: Any = None

    def activate_impl(self) -> None:
        trt = require("tensorrt", "Running a TensorRT engine")
        require("cuda", "Running a TensorRT engine (device memory through cuda-python)")
        check_compatible(self.path, trt.__version__, compute_capability())
        try:
            self.session = EngineSession(trt, str(self.path))
        except RuntimeError as e:
            raise ModelLoadError(f"TensorRT cannot load {self.path}: {first_line(e)}") from None

    def deactivate_impl(self) -> None:
        if self.session is not None:
            self.session.close()
        self.session = None

    def input_specs_impl(self) -> tuple[TensorSpec, ...]:
        return tuple(
            TensorSpec(name, dtype, tuple(d if d >= 0 else f"{name}_dim{k}" for k, d in enumerate(shape)))
            for name, dtype, shape in self.session.specs()
        )

    def output_names_impl(self) -> list[str]:
        return list(self.session.outputs)

    def infer_impl(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.session.run(feed)


def check_compatible(engine: Path, tensorrt_version: str, compute_capability: str | None) -> None:
    """Refuse an engine built for another TensorRT version or GPU, naming both (exit 2)."""
    sidecar = read_sidecar(engine)
    facts = (sidecar.engine if sidecar else None) or {}
    built_version, built_cc = facts.get("tensorrt_version"), facts.get("compute_capability")
    onnx_name = (facts.get("from_onnx") or {}).get("file", "MODEL.onnx")
    same_version = built_version is None or _release(built_version) == _release(tensorrt_version)
    same_gpu = built_cc is None or compute_capability is None or built_cc == compute_capability
    if not (same_version and same_gpu):
        raise ModelLoadError(
            f"{engine.name} was built with TensorRT {built_version} for sm_{(built_cc or '?').replace('.', '')} "
            f"({facts.get('gpu', 'unknown GPU')}); this machine has TensorRT {tensorrt_version} and "
            f"sm_{(compute_capability or '?').replace('.', '')}. TensorRT engines run only where they were built.",
            hint=f"Build one here from the ONNX: edgekit build-engine {onnx_name}",
        )


def _release(version: str) -> tuple[str, ...]:
    return tuple(re.split(r"[.]", version)[:3])
