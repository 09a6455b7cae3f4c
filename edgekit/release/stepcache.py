"""The pipeline's step cache: one folder per step, named by its key, trusted only while its files match.

An entry is built in a hidden staging folder and renamed into place once its record.json (with the sha256
of every file beside it) is written, so a reader never sees a half-written entry, and two runs racing on one
key (two users, two cluster nodes sharing the folder) keep the first complete entry and drop the second.
An entry whose files changed after it was written is not reused: it is set aside and the step runs again.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

RECORD = "record.json"
_STAGING = ".staging-"  # entries being built; a run killed mid-step leaves one, which prune removes


@dataclass(frozen=True)
class Entry:
    """One cache entry as `edgekit cache ls` shows it."""

    key: str
    step: str
    size_bytes: int
    written: float  # seconds since the epoch
    intact: bool


def _files(folder: Path) -> dict[str, str]:
    from edgekit.checksum import sha256_path

    return {
        p.relative_to(folder).as_posix(): sha256_path(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != RECORD
    }


def _read(folder: Path) -> dict | None:
    """The entry's record when its files are still the ones it recorded; None when absent or altered."""
    try:
        record = json.loads((folder / RECORD).read_text())
    except (OSError, ValueError):
        return None
    files = record.get("_files") if isinstance(record, dict) else None
    if not isinstance(files, dict) or _files(folder) != files:
        return None
    return record


def lookup(cache: Path, key: str) -> tuple[dict | None, bool]:
    """(record, altered): the entry's record if it is intact; `altered` when an entry exists but no longer
    matches what was written (it is moved aside, so the step runs again and nothing reads it)."""
    folder = cache / key
    if not folder.exists():
        return None, False
    record = _read(folder)
    if record is not None:
        return record, False
    _discard(folder)
    return None, True


def build(cache: str, key: str, step: str, work: Callable[[Path], dict]) -> dict:
    """Run `work` in a staging folder and publish it as the entry `key`; returns its record. Runs wherever
    the executor puts the step (this process, a worker process, a Ray node that sees the cache folder)."""
    root = Path(cache)
    root.mkdir(parents=True, exist_ok=True)
    staging = root / f"{_STAGING}{key}-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        started = time.time()
        record = work(staging)
        ended = time.time()
        record = {**record, "_key": key, "_step": step, "_started": started, "_ended": ended, "_written": ended,
                  "_files": _files(staging)}  # fmt: skip
        (staging / RECORD).write_text(json.dumps(record, indent=2, default=str) + "\n")
        winner = _publish(staging, root / key)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return winner if winner is not None else record


def _publish(staging: Path, folder: Path) -> dict | None:
    """Rename the finished staging folder into place; an intact entry another run published first wins, and
    its record is returned (None: this one was published)."""
    for _ in range(3):
        try:
            os.rename(staging, folder)
            return None
        except OSError:
            winner = _read(folder)
            if winner is not None:
                return winner  # another run finished the same step first; both are the same step's result
            _discard(folder)
    return None


def _discard(folder: Path) -> None:
    """Move an entry out of the way atomically, then delete it (a reader never sees it half-deleted)."""
    trash = folder.with_name(f"{_STAGING}discarded-{folder.name}-{uuid.uuid4().hex[:8]}")
    try:
        os.rename(folder, trash)
    except OSError:
        return  # already gone (another run discarded or replaced it)
    shutil.rmtree(trash, ignore_errors=True)


def entries(cache: Path) -> list[Entry]:
    """Every entry of the cache folder, oldest first (staging folders of interrupted steps are not entries)."""
    found = []
    for folder in sorted(cache.iterdir()) if cache.is_dir() else []:
        if not folder.is_dir() or folder.name.startswith(_STAGING):
            continue
        try:
            raw = json.loads((folder / RECORD).read_text())
        except (OSError, ValueError):
            raw = {}
        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        written = raw.get("_written") or folder.stat().st_mtime
        found.append(Entry(folder.name, str(raw.get("_step", "?")), size, float(written), _read(folder) is not None))
    return sorted(found, key=lambda e: e.written)


def prune(cache: Path, older_than_s: float) -> list[Entry]:
    """Remove entries written more than `older_than_s` seconds ago, altered entries, and staging folders
    left by interrupted runs older than that; returns the entries removed."""
    now = time.time()
    removed = [e for e in entries(cache) if now - e.written > older_than_s or not e.intact]
    for entry in removed:
        _discard(cache / entry.key)
    for folder in cache.glob(f"{_STAGING}*") if cache.is_dir() else []:
        if now - folder.stat().st_mtime > older_than_s:
            shutil.rmtree(folder, ignore_errors=True)
    return removed
