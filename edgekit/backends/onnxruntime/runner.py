"""ONNX Runtime runner (CPU provider unless told otherwise)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edgekit._lazy import require
from edgekit.backends.onnxruntime.worker_loader import ORT_TYPES  # one table, also used on devices
from edgekit.errors import ConversionError, ModelLoadError, first_line
from edgekit.runners.base import Runner
from edgekit.sidecar import ArtifactIO
from edgekit.spec import TensorSpec

# model metadata saying the file's Q/DQ pairs stand for exact int8 arithmetic (int32 accumulation: TensorRT's),
# which this runner simulates with the pairs unfused rather than with ONNX Runtime's CPU int8 kernels
EXACT_QDQ = "edgekit.exact_qdq"


class OnnxRuntimeRunner(Runner):
    name = "onnxruntime"

    def __init__(
        self,
        path: str | Path | bytes,
        io: ArtifactIO | None = None,
        threads: int | None = None,
        providers: tuple[str, ...] = ("CPUExecutionProvider",),
    ) -> None:
        super().__init__()
        self.path, self.threads, self.providers = path, threads, providers
        self.session: Any = None  # the file describes its own tensors: `io` is not needed

    def activate_impl(self) -> None:
        ort = require("onnxruntime", "Running an .onnx file")

        options = ort.SessionOptions()
        options.log_severity_level = 4  # a node that fails is reported by infer's error, not logged in red too
        if self.threads:
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
        self.session = self._session(ort, options)
        if self.session.get_modelmeta().custom_metadata_map.get(EXACT_QDQ):
            # a TensorRT-ready file: its Q/DQ pairs mean exact int8 arithmetic; ONNX Runtime would fuse them into
            # its CPU int8 kernels, whose s8s8 form saturates on CPUs without VNNI (a CPU artefact, not the file's)
            options.add_session_config_entry("session.disable_quant_qdq", "1")
            self.session = self._session(ort, options)

    def _session(self, ort, options) -> Any:
        source = self.path if isinstance(self.path, bytes) else str(self.path)
        try:
            return ort.InferenceSession(source, options, providers=list(self.providers))
        except Exception as e:
            raise ModelLoadError(
                f"ONNX Runtime cannot load {self.path if not isinstance(self.path, bytes) else 'the model'}: "
                f"{first_line(e, 400)}"
            ) from None

    def deactivate_impl(self) -> None:
        self.session = None

    def input_specs_impl(self) -> tuple[TensorSpec, ...]:
        return tuple(
            TensorSpec(
                i.name,
                ORT_TYPES.get(i.type, i.type),
                tuple(d if isinstance(d, int) else (d or f"{i.name}_dim{k}") for k, d in enumerate(i.shape)),
            )
            for i in self.session.get_inputs()
        )

    def output_names_impl(self) -> list[str]:
        return [o.name for o in self.session.get_outputs()]

    def infer_impl(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = self.output_names_impl()
        try:
            return dict(zip(names, self.session.run(names, dict(feed))))
        except Exception as e:  # onnxruntime's Fail / RuntimeException: a kernel rejected what it was given
            raise ConversionError(f"ONNX Runtime cannot run {self._name()}: {node_failure(str(e))}") from None

    def _name(self) -> str:
        return "the model" if isinstance(self.path, bytes) else Path(self.path).name


def node_failure(message: str) -> str:
    """ONNX Runtime's run error cut to the op, the node and the reason (it names a C++ function first)."""
    where = re.search(r"running (\w+) node\. Name:'([^']*)'", message)
    reason = message.split("Status Message: ")[-1]
    reason = reason.rsplit(" was false. ", 1)[-1]  # after the check that failed: the kernel's own words
    head = f"{where[1]} node '{where[2]}' failed: " if where else ""
    return head + first_line(RuntimeError(reason), 300)
