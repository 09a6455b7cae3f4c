"""OpenVINO Runtime runner: the IR compiled for the device its rt_info names (the CPU unless exported for an
Intel GPU or NPU), one latency stream, the benchmark's thread count."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.artifact import check_complete
from edgekit.backends.openvino.ir import companions
from edgekit.backends.openvino.stack import import_stack
from edgekit.backends.openvino.worker_loader import OV_TYPES, compile_config, placement
from edgekit.errors import ModelLoadError, first_line
from edgekit.runners.base import Runner
from edgekit.sidecar import ArtifactIO
from edgekit.spec import Signature, TensorSpec


class OpenVINORunner(Runner):
    name = "openvino"

    def __init__(self, path: str | Path, io: ArtifactIO | None = None, threads: int | None = None) -> None:
        super().__init__()
        self.path, self.threads = Path(path), threads
        self.compiled: Any = None
        self.device = "CPU"

    def activate_impl(self) -> None:
        ov = import_stack("openvino", "Running an OpenVINO IR (.xml)")
        check_complete(self.path, companions(self.path))
        core = ov.Core()
        model = None
        try:
            model = core.read_model(str(self.path))
            self.device, precision = placement(core, model)
            config = compile_config(self.device, self.threads, precision)
            self.compiled = core.compile_model(model, self.device, config)
        except Exception as e:
            where = named_node_context(model, str(e)) if model is not None else ""
            raise ModelLoadError(f"OpenVINO cannot load {self.path}: {first_line(e, 400)}{where}") from None
        self.request = self.compiled.create_infer_request()
        # names as the IR declares them: a compiled port may gather several (GPT-2's input_ids also answers to
        # 'input_ids_1' and '46'), and get_any_name would pick any of them
        self.inputs = tuple(port_spec(port) for port in model.inputs)
        self.outputs = [port.get_any_name() for port in model.outputs]

    def deactivate_impl(self) -> None:
        self.compiled = self.request = None

    def input_specs_impl(self) -> tuple[TensorSpec, ...]:
        return self.inputs

    def output_names_impl(self) -> list[str]:
        return self.outputs

    def infer_impl(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        results = self.request.infer(dict(feed))
        return {name: np.array(results[port]) for name, port in zip(self.outputs, self.compiled.outputs)}


def port_spec(port: Any) -> TensorSpec:
    """An IR input or output as a TensorSpec: its name, element type, and shape with free dims named."""
    name, element = port.get_any_name(), port.get_element_type().get_type_name()
    shape = tuple(f"{name}_dim{k}" if d.is_dynamic else d.get_length() for k, d in enumerate(port.get_partial_shape()))
    return TensorSpec(name, OV_TYPES.get(element, element), shape)


def ir_signature(path: Path) -> Signature:
    """The inputs and outputs an IR declares (read, not compiled)."""
    ov = import_stack("openvino", "Reading an OpenVINO IR (.xml)")
    check_complete(path, companions(path))
    model = ov.Core().read_model(str(path))
    return Signature(tuple(port_spec(p) for p in model.inputs), tuple(port_spec(p) for p in model.outputs))


def named_node_context(model: Any, message: str) -> str:
    """Where the node an OpenVINO error names sits: what it reads and what reads it (a converter's name such as
    FakeQuantize_436192 says nothing to a user; the ops around it name the layer)."""
    found = re.search(r"name '([^']+)'", message)
    op = next((o for o in model.get_ops() if o.get_friendly_name() == found.group(1)), None) if found else None
    if op is None:
        return ""
    said = [f"; {op.get_friendly_name()} is a {op.get_type_name()}"]
    if op.get_input_size():
        source = op.input_value(0).get_node()
        said.append(f"reading {source.get_type_name()} '{source.get_friendly_name()}'")
    readers = [t.get_node() for out in op.outputs() for t in out.get_target_inputs()]
    if readers:
        said.append("read by " + ", ".join(f"{r.get_type_name()} '{r.get_friendly_name()}'" for r in readers[:3]))
    return " ".join(said)
