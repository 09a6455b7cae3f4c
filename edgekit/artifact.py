"""Artifacts on disk: the output folder, a staging area beside it, and atomic publishing with the sidecar."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from edgekit.errors import UsageError
from edgekit.sidecar import Sidecar, sidecar_path


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
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; the file is as readable as any other output
    os.replace(tmp, path)


def publish(staged_file: Path, final: Path, sidecar: Sidecar) -> None:
    """Move a finished file into place with its sidecar: the sidecar is written last and never points to a half file."""
    os.replace(staged_file, final)
    write_json_atomic(sidecar_path(final), sidecar.to_json())
