"""The sidecar (`*.edgekit.json`): the versioned contract between export, evaluate, benchmark and release.

Written and read only through this module. A reader refuses a sidecar of another major version.
The JSON Schema ships in the package (edgekit/schemas/); regenerate it with `python -m edgekit.sidecar`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edgekit.errors import ModelLoadError, validation_message
from edgekit.spec import Role, Signature, TensorSpec

SCHEMA_VERSION = "1.6"  # major.minor: a new major breaks readers, a new minor only adds optional fields
SIDECAR_SUFFIX = ".edgekit.json"
SCHEMA_FILE = Path(__file__).with_name("schemas") / "sidecar-1.schema.json"


class _Open(BaseModel):
    """Records whose extra fields (a tool's own notes) are kept as they are."""

    model_config = ConfigDict(extra="allow")


class TensorEntry(_Open):
    """One input or output: the name the source uses, its dtype and shape, and the file tensor it maps to."""

    name: str
    dtype: str | None = None
    shape: list[int | str] | None = None
    scale: float | None = None
    zero_point: int | None = None
    role: Role | None = None  # outputs: "scores" (top-1 agreement applies) or "features"
    file_tensor: dict[str, Any] | None = None  # the runtime file's own tensor (name, dtype, quantization)

    def spec(self) -> TensorSpec:
        return TensorSpec(
            self.name, self.dtype or "float32", tuple(self.shape or ()), self.scale, self.zero_point, self.role
        )


class ArtifactIO(BaseModel):
    """The inputs and outputs of an exported file, in the order its runtime takes and returns them."""

    model_config = ConfigDict(extra="forbid")

    inputs: list[TensorEntry] = Field(default_factory=list)
    outputs: list[TensorEntry] = Field(default_factory=list)

    @classmethod
    def from_signature(cls, signature: Signature) -> ArtifactIO:
        return cls(
            inputs=[TensorEntry(**s.to_json()) for s in signature.inputs],
            outputs=[TensorEntry(**s.to_json()) for s in signature.outputs],
        )

    def input_specs(self) -> tuple[TensorSpec, ...]:
        return tuple(e.spec() for e in self.inputs if e.dtype is not None and e.shape is not None)

    def output_names(self) -> list[str]:
        return [e.name for e in self.outputs]

    def roles(self) -> dict[str, Role]:
        return {e.name: e.role for e in self.outputs if e.role}


class RouteStep(_Open):
    """One conversion or quantization step: its name, the tool, the time, and what it applied."""

    step: str
    tool: str | None = None
    seconds: float
    applied: str | None = None


class DeviceRef(BaseModel):
    name: str
    description: str


class SourceRef(BaseModel):
    path: str
    kind: str
    format: str
    sha256: str


class QuantizationRecord(_Open):
    """The recipe resolved for the device, and what the steps actually applied."""

    target: str
    device: str
    quantization: str  # what the target asks for
    applied: str  # what the written file holds: none, fp16, dynamic, static, full-integer, int16x8
    scheme_name: str | None = None
    scheme: dict[str, Any] | None = None
    # 1.2: the per-layer float fallback: layers kept float with their sensitivity, the attempts, the table
    fallback: dict[str, Any] | None = None


class Calibration(BaseModel):
    path: str
    sha256: str
    samples: int


class OutputParityRecord(_Open):
    name: str
    passed: bool


class ParityRecord(_Open):
    passed: bool
    samples: int
    inputs: str
    matched_by: Literal["name", "position"]
    outputs: list[OutputParityRecord]
    not_measured: str | None = None  # why no parity ran where the file was exported (it cannot run there)
    ran_on: str | None = None  # the device the file ran on for parity (export --run-on; None: where it was exported)


class CompanionFile(BaseModel):
    file: str
    size_bytes: int
    sha256: str


class Sidecar(BaseModel):
    """Everything an export did, enough to answer "what is this file?" without the source."""

    model_config = ConfigDict(extra="forbid")

    schema_version: str = SCHEMA_VERSION
    edgekit_version: str
    created: str
    target: str
    runtime: str
    precision: str
    file: str
    size_bytes: int
    sha256: str
    route: list[RouteStep]
    device: DeviceRef
    tools: dict[str, str]
    source: SourceRef
    tokenizer: str | None = None
    tensors: ArtifactIO
    quantization: QuantizationRecord
    calibration: Calibration | None = None
    parity: ParityRecord
    notes: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    # 1.1: how the source was compressed (its compress.json: method, settings, metrics, data hashes)
    compression: dict[str, Any] | None = None
    # 1.2: the accuracy gate the export passed (--eval DATA --max-drop PTS): metrics, reference, drop
    evaluation: dict[str, Any] | None = None
    # 1.3: a TensorRT engine built from the exported ONNX: TensorRT version, GPU, compute capability,
    # builder flags, profiles, per-layer precisions, where it was built
    engine: dict[str, Any] | None = None
    # 1.4: the other files of a multi-file artifact (an OpenVINO IR's .bin), each with its size and sha256
    companions: list[CompanionFile] = Field(default_factory=list)
    # 1.5: where a target has several routes (PyTorch -> TFLite: litert-torch, or through ONNX and onnx2tf), the
    # one that made the file, the candidates in the order tried, and what each route before it gave
    route_choice: dict[str, Any] | None = None
    # 1.6: the search that chose this file (`edgekit search`'s copy in OUT/DEVICE): the device profile, budgets,
    # trials run, this trial and its scores, the front, and why this one
    search: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def sidecar_path(artifact: str | Path) -> Path:
    artifact = Path(artifact)
    return artifact.with_name(artifact.stem + SIDECAR_SUFFIX)


def parse_sidecar(data: dict[str, Any], where: str = "the sidecar") -> Sidecar:
    """Validate sidecar JSON; a missing or other major version is refused with what to do."""
    if not isinstance(data, dict):
        raise ModelLoadError(f"{where} is not a sidecar: a JSON {type(data).__name__}, not an object.")
    version = str(data.get("schema_version", "0"))
    major, supported = version.split(".")[0], SCHEMA_VERSION.split(".")[0]
    if major != supported:
        raise ModelLoadError(
            f"{where} has sidecar schema version {version}; this edgekit reads version {supported}.x.",
            hint="Export the model again with this edgekit, or use the edgekit version that wrote it.",
        )
    try:
        return Sidecar.model_validate(data)
    except ValidationError as e:
        raise ModelLoadError(
            f"{where} does not match the sidecar schema {version}: {validation_message(e.errors()[0])} "
            f"at {'.'.join(map(str, e.errors()[0]['loc']))}."
        ) from None


def read_sidecar(artifact: str | Path) -> Sidecar | None:
    """The artifact's sidecar, validated; None when there is none."""
    path = sidecar_path(artifact)
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:  # ValueError: bad JSON, and bytes that are not UTF-8
        raise ModelLoadError(f"{path} is not readable JSON: {e}") from None
    return parse_sidecar(data, str(path))


def read_io(artifact: str | Path) -> ArtifactIO | None:
    sidecar = read_sidecar(artifact)
    return sidecar.tensors if sidecar else None


def json_schema() -> dict[str, Any]:
    schema = Sidecar.model_json_schema()
    schema["title"] = f"edgekit sidecar {SCHEMA_VERSION}"
    return schema


if __name__ == "__main__":  # python -m edgekit.sidecar: rewrite the shipped JSON Schema
    SCHEMA_FILE.parent.mkdir(exist_ok=True)
    SCHEMA_FILE.write_text(json.dumps(json_schema(), indent=2) + "\n")
    print(SCHEMA_FILE)
