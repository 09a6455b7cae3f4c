"""LiteRT runner (.tflite, ai_edge_litert): takes and returns float arrays like the source model.

Integer I/O tensors are quantized on the way in and dequantized on the way out with the scale and
zero point recorded in the file, so parity and evaluation compare like with like. Files with a
fixed batch (the ONNX route fixes every shape) run a larger feed in slices of that batch.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edgekit._lazy import require
from edgekit.backends.litert.tflite_file import TensorInfo, read_tflite
from edgekit.errors import ModelLoadError, first_line
from edgekit.quiet import quiet
from edgekit.runners.base import Runner, run_in_slices
from edgekit.sidecar import ArtifactIO, TensorEntry
from edgekit.sources.base import Model
from edgekit.spec import TensorSpec, default_output_names


def tflite_io(path: Path, model: Model) -> ArtifactIO:
    """The source's names and dtypes, each with the file tensor it maps to (its own name, dtype, shape,
    and scale/zero point where quantized)."""
    info = read_tflite(path)
    signature = model.signature
    inputs = [
        TensorEntry(**spec.to_json(), file_tensor=t.to_json())
        for spec, t in zip(_by_name(signature.inputs, info.inputs), info.inputs)
    ]
    outputs = list(signature.outputs)
    if len(outputs) != len(info.outputs):
        outputs = [TensorSpec(n, "float32", ()) for n in default_output_names(len(info.outputs))]
    return ArtifactIO(
        inputs=inputs,
        outputs=[TensorEntry(name=o.name, role=o.role, file_tensor=t.to_json()) for o, t in zip(outputs, info.outputs)],
    )


def _by_name(specs: tuple[TensorSpec, ...], tensors: tuple[TensorInfo, ...]) -> list[TensorSpec]:
    """Source specs in the file's input order: by name where the names match, else by position."""
    named = {s.name: s for s in specs}
    if all(t.name in named for t in tensors):
        return [named[t.name] for t in tensors]
    return list(specs)


def _public_dtype(detail: dict) -> str:
    quantized = detail["quantization"][0] != 0.0
    return "float32" if quantized else np.dtype(detail["dtype"]).name


class LiteRTRunner(Runner):
    name = "litert"

    def __init__(self, path: str | Path, io: ArtifactIO | None = None, threads: int | None = None) -> None:
        super().__init__()
        self.path, self.threads = Path(path), threads
        self.io_inputs = io.input_specs() if io else ()
        self.io_outputs = io.output_names() if io else []
        self.interpreter: Any = None

    def activate_impl(self) -> None:
        litert = require("ai_edge_litert.interpreter", "Running a .tflite file", extra="tflite")
        try:
            with quiet():  # LiteRT announces its default XNNPACK delegate on stderr
                self.interpreter = litert.Interpreter(
                    model_path=str(self.path), num_threads=self.threads, **self.options(litert)
                )
                self.interpreter.allocate_tensors()
        except Exception as e:  # a corrupt flatbuffer or a missing kernel
            raise ModelLoadError(f"LiteRT cannot load {self.path}: {first_line(e)}") from None
        self.inputs = self.interpreter.get_input_details()
        self.outputs = self.interpreter.get_output_details()
        named = len(self.io_inputs) == len(self.inputs)  # the source's names, from the I/O description
        self.specs = tuple(
            TensorSpec(
                self.io_inputs[i].name if named else d["name"],
                self.io_inputs[i].dtype if named else _public_dtype(d),
                ("batch", *(int(x) for x in d["shape_signature"][1:])) if len(d["shape"]) else (),
            )
            for i, d in enumerate(self.inputs)
        )
        self.out_names = (
            self.io_outputs if len(self.io_outputs) == len(self.outputs) else [d["name"] for d in self.outputs]
        )
        fixed = [int(d["shape_signature"][0]) for d in self.inputs if len(d["shape"]) and d["shape_signature"][0] > 0]
        self.fixed_batch = fixed[0] if fixed else None

    def options(self, litert: Any) -> dict[str, Any]:
        """More keyword arguments for the Interpreter (none: LiteRT's defaults, XNNPACK included)."""
        return {}

    def deactivate_impl(self) -> None:
        self.interpreter = None

    def input_specs_impl(self) -> tuple[TensorSpec, ...]:
        return self.specs

    def output_names_impl(self) -> list[str]:
        return self.out_names

    def infer_impl(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        arrays = [np.asarray(feed[s.name]) for s in self.specs]
        return dict(zip(self.out_names, run_in_slices(self.path, arrays, self.fixed_batch, self._invoke)))

    def _invoke(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        interp = self.interpreter
        resized = False
        for detail, array in zip(self.inputs, arrays):
            if tuple(detail["shape"]) != array.shape:
                interp.resize_tensor_input(detail["index"], array.shape)
                resized = True
        if resized:
            interp.allocate_tensors()
            self.inputs = interp.get_input_details()
            self.outputs = interp.get_output_details()
        for detail, array in zip(self.inputs, arrays):
            interp.set_tensor(detail["index"], quantize(array, detail))
        interp.invoke()
        return [dequantize(interp.get_tensor(d["index"]), d) for d in self.outputs]


def quantize(array: np.ndarray, detail: dict) -> np.ndarray:
    """float -> the tensor's integer type with its scale and zero point (no-op for float tensors)."""
    dtype = np.dtype(detail["dtype"])
    scale, zero_point = detail["quantization"]
    if scale == 0.0 or array.dtype == dtype:
        return array.astype(dtype, copy=False)
    info = np.iinfo(dtype)
    return np.clip(np.round(array / scale) + zero_point, info.min, info.max).astype(dtype)


def dequantize(array: np.ndarray, detail: dict) -> np.ndarray:
    scale, zero_point = detail["quantization"]
    if scale == 0.0:
        return array.copy()
    return ((array.astype(np.float32) - zero_point) * scale).astype(np.float32)
