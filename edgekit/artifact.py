"""Artifacts: the exported file plus its sidecar (*.edgekit.json), always written atomically."""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from edgekit.errors import ModelLoadError, UsageError
from edgekit.spec import TensorSpec

SIDECAR_SUFFIX = ".edgekit.json"


def sidecar_path(artifact: str | Path) -> Path:
    artifact = Path(artifact)
    return artifact.with_name(artifact.stem + SIDECAR_SUFFIX)


def read_sidecar(artifact: str | Path) -> dict[str, Any] | None:
    path = sidecar_path(artifact)
    return json.loads(path.read_text()) if path.exists() else None


def sidecar_tensors(artifact: str | Path, required: bool = True) -> tuple[tuple[TensorSpec, ...], list[str]]:
    """The input specs and output names an artifact's sidecar records. `required`: the file cannot say
    its inputs itself (.ptl, .pte), so a missing sidecar is a ModelLoadError."""
    tensors = (read_sidecar(artifact) or {}).get("tensors", {})
    specs = tuple(TensorSpec.from_json(t) for t in tensors.get("inputs", []))
    if required and not specs:
        raise ModelLoadError(f"{artifact} has no sidecar with its input tensors; export it with edgekit.")
    return specs, [o["name"] for o in tensors.get("outputs", [])]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def prepare_out_dir(out_dir: str | Path) -> Path:
    """Create the output folder; refuse a path that is an existing file."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UsageError(f"Output path {out} is a file; -o takes a folder (created if missing).")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"Cannot create the output folder {out}: {e.strerror}.") from None
    return out


@contextmanager
def staging(out_dir: Path) -> Iterator[Path]:
    """A scratch folder inside out_dir (same filesystem, so the final rename is atomic); always removed."""
    import shutil

    tmp = Path(tempfile.mkdtemp(prefix=".edgekit-tmp-", dir=out_dir))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_json_atomic(path: Path, data: Any) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2, default=str)
        f.write("\n")
    os.replace(tmp, path)


def publish(staged_file: Path, final: Path, sidecar: dict[str, Any]) -> None:
    """Move a finished file into place with its sidecar: the sidecar is written last and never points to a half file."""
    sidecar.update(file=final.name, size_bytes=staged_file.stat().st_size, sha256=sha256_file(staged_file))
    os.replace(staged_file, final)
    write_json_atomic(sidecar_path(final), sidecar)
