"""The bundle manifest (`manifest.json`): a versioned contract between edgekit and the app or release
pipeline that ships its files. Written and read only through this module; its JSON Schema ships in the
package (edgekit/schemas/manifest-1.schema.json; regenerate with `python -m edgekit.release.manifest`)."""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from edgekit.errors import ModelLoadError, validation_message

MANIFEST_VERSION = "1.0"  # major.minor, as the sidecar's: a new major breaks readers
MANIFEST_FILE = "manifest.json"
SCHEMA_FILE = Path(__file__).parent.parent / "schemas" / "manifest-1.schema.json"
Platform = Literal["android", "ios", "generic"]


def safe_relative(path: str) -> str:
    """A path inside the bundle: relative, POSIX, no `..`, no empty parts (a manifest naming `../x` or `/x`
    would make an app or a verifier read outside the bundle)."""
    pure = PurePosixPath(path)
    if not path or pure.is_absolute() or "\\" in path or any(part in ("..", "", ".") for part in path.split("/")):
        raise ValueError(f"'{path}' is not a plain relative path inside the bundle")
    return path


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FileEntry(_Strict):
    path: str
    size_bytes: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")

    _check_path = field_validator("path")(lambda cls, v: safe_relative(v))


class Tensor(_Strict):
    name: str  # the source's name
    file_name: str | None = None  # the file's own tensor name, where it differs
    dtype: str | None = None
    shape: list[int | str] | None = None
    scale: float | None = None
    zero_point: int | None = None
    role: str | None = None


class Preprocessing(_Strict):
    """What the app must do to its inputs before feeding the model, as far as edgekit knows it."""

    tokenizer: str | None = None  # the bundle folder with the tokenizer files (text models)
    tokenizer_files: list[str] = Field(default_factory=list)
    max_length: int | None = None  # the fixed sequence length inputs are padded to (None: free)
    padding: str | None = None  # "max_length" when the length is fixed
    lowercase: bool | None = None  # from the tokenizer's own config where it says


class Generation(_Strict):
    """What an app needs to run a causal LM that generates (its runtime reads the same from the model's files)."""

    context_length: int  # prompt and generated tokens together, at most
    eos_token_ids: list[int]  # generation stops at any of these
    kv_cache_bytes: int = Field(description="the key/value cache at the full context, batch 1")
    chat_template: bool  # whether the tokenizer carries one (apps format chat prompts with it)


class Provenance(_Strict):
    edgekit_version: str
    tools: dict[str, str]
    source: dict[str, str]  # kind, format, sha256 (not the path: it names the builder's disk)
    calibration: dict[str, Any] | None = None  # sha256 and samples
    route: list[str]
    parity: dict[str, Any]


class ModelEntry(_Strict):
    file: str  # the file the runtime opens
    files: list[str]  # it and its companions (an OpenVINO .xml's .bin)
    target: str
    runtime: str
    precision: str
    quantization: dict[str, Any]  # applied, scheme_name
    inputs: list[Tensor]
    outputs: list[Tensor]
    preprocessing: Preprocessing
    evaluation: list[dict[str, Any]] = Field(default_factory=list)
    benchmark: list[dict[str, Any]] = Field(default_factory=list)
    provenance: Provenance
    generation: Generation | None = None  # causal LMs that generate with a key/value cache

    _check_file = field_validator("file")(lambda cls, v: safe_relative(v))


class Manifest(_Strict):
    schema_version: str = MANIFEST_VERSION
    name: str
    version: str
    platform: Platform
    labels: str | None = None
    models: list[ModelEntry]
    files: list[FileEntry]  # every file of the bundle but this manifest, sorted by path

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def parse_manifest(data: Any, where: str) -> Manifest:
    """Validate manifest JSON: another major version or a schema violation is refused naming the field."""
    version = str(data.get("schema_version", "0")) if isinstance(data, dict) else "0"
    if version.split(".")[0] != MANIFEST_VERSION.split(".")[0]:
        raise ModelLoadError(
            f"{where} has manifest schema version {version}; this edgekit reads {MANIFEST_VERSION.split('.')[0]}.x."
        )
    try:
        return Manifest.model_validate(data)
    except ValidationError as e:
        error = e.errors()[0]
        raise ModelLoadError(
            f"{where} does not match the manifest schema: {validation_message(error)} at "
            f"{'.'.join(map(str, error['loc']))}."
        ) from None


def json_schema() -> dict[str, Any]:
    schema = Manifest.model_json_schema()
    schema["title"] = f"edgekit bundle manifest {MANIFEST_VERSION}"
    return schema


if __name__ == "__main__":  # python -m edgekit.release.manifest: rewrite the shipped JSON Schema
    SCHEMA_FILE.write_text(json.dumps(json_schema(), indent=2) + "\n")
    print(SCHEMA_FILE)
