"""Artifacts on disk: the output folder, a staging area beside it, and atomic publishing with the sidecar.

Which files make up an artifact is its runtime's to say: edgekit.dispatch.files asks the backend."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from edgekit.errors import ModelLoadError, UsageError
from edgekit.sidecar import Sidecar, sidecar_path


def _none(path: Path) -> tuple[Path, ...]:
    return ()


def check_complete(path: Path, companions: tuple[Path, ...]) -> None:
    """Refuse an artifact whose companion files (its runtime's, e.g. an OpenVINO .xml's .bin) are not beside it,
    naming the one missing (exit 2): a runtime's own message for an .xml without its .bin speaks of empty weights."""
    for part in companions:
        if not part.exists():
            raise ModelLoadError(
                f"{path} is missing a file it needs: {part} is missing.",
                hint=f"Its files belong together in one folder: {', '.join(f.name for f in (path, *companions))}.",
            )


_CREATED: list[Path] = []  # output folders this process created, for remove_unused_out_dirs()
_STAGING: set[Path] = set()  # staging folders that may exist now, for remove_unused_out_dirs()


def prepare_out_dir(out_dir: str | Path) -> Path:
    """Create the output folder; refuse a path that is an existing file."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UsageError(f"Output path {out} is a file; -o takes a folder (created if missing).")
    if not out.exists():
        _CREATED.append(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"Cannot create the output folder {out}: {e.strerror}.") from None
    require_writable(out, "The output folder")
    return out


def require_writable(folder: Path, what: str) -> None:
    """Refuse, before any work, a folder this process cannot write in (a read-only mount, no permission)."""
    if not os.access(folder, os.W_OK | os.X_OK):
        why = "its file system is mounted read-only" if os.statvfs(folder).f_flag & os.ST_RDONLY else "no permission"
        raise UsageError(f"{what} {folder} is not writable: {why}.", hint="Choose a folder you can write in.")


def forget_out_dirs() -> None:
    _CREATED.clear()


def remove_unused_out_dirs() -> None:
    """After a failed command: staging folders a signal may have left (one raised between a folder's creation
    and the cleanup that guards it), then the output folders it created and left empty, go again."""
    for tmp in list(_STAGING):
        shutil.rmtree(tmp, ignore_errors=True)
    _STAGING.clear()
    for out in reversed(_CREATED):
        try:
            out.rmdir()  # only succeeds when empty
        except OSError:
            pass
    _CREATED.clear()


@contextmanager
def staging(out_dir: Path) -> Iterator[Path]:
    """A scratch folder inside out_dir (same filesystem, so the final rename is atomic); always removed."""
    tmp = out_dir / f".edgekit-tmp-{secrets.token_hex(6)}"
    _STAGING.add(tmp)  # named before it exists: a signal anywhere from here on leaves nothing (see main)
    try:
        tmp.mkdir(mode=0o700)
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        _STAGING.discard(tmp)


def write_json_atomic(path: Path, data: Any) -> None:
    write_text_atomic(path, _json_text(data))


def _json_text(data: Any) -> str:
    return json.dumps(data, indent=2, default=str) + "\n"


def write_text_atomic(path: Path, text: str) -> None:
    """Write `text` beside `path` and rename it into place: a reader never sees half a file."""
    staged = stage_text(path, text)
    try:
        os.replace(staged, path)
    except BaseException:
        staged.unlink(missing_ok=True)
        raise


def stage_text(path: Path, text: str) -> Path:
    """`text` written whole into a hidden file beside `path` (as readable as any other output), for a rename
    into place; a failed write (a full disk, a signal) leaves nothing behind."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; the file is as readable as any other output
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def check_json_path(target: str | Path) -> None:
    """A command's --json, checked before the work: a file in an existing folder, or `-`."""
    if str(target) == "-":
        return
    path = Path(target)
    if path.is_dir():
        raise UsageError(f"--json {path} is a folder; give a file name, e.g. {path / 'results.json'}.")
    if not path.parent.is_dir():
        raise UsageError(f"--json {path}: the folder {path.parent} does not exist.")
    require_writable(path.parent, f"--json {path}: the folder")


def write_json_output(target: str | Path, data: Any) -> None:
    """A command's --json: a file, written atomically, or `-` for stdout (the command's tables then go to stderr,
    so the JSON is all a script reads)."""
    if str(target) == "-":
        sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
        sys.stdout.flush()
    else:
        write_json_atomic(Path(target), data)


def publish(
    staged_file: Path, final: Path, sidecar: Sidecar, companions: Callable[[Path], tuple[Path, ...]] = _none
) -> None:
    """Move a finished file into place with its sidecar: the sidecar is written last and never points to a half file.

    An artifact of several files (an OpenVINO .xml and its .bin) loses its old main file and sidecar first, then
    its companions move in, then the main file: an interruption leaves no main file beside the wrong companions.
    """
    with _folder_lock(final.parent):  # two exports racing into one folder: each publishes whole, in turn
        _publish(staged_file, final, sidecar, companions)


@contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """An exclusive lock on the folder itself (flock on its descriptor: no lock file is left behind)."""
    import fcntl

    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _publish(staged_file: Path, final: Path, sidecar: Sidecar, companions: Callable[[Path], tuple[Path, ...]]) -> None:
    # the sidecar is the one write publishing needs space for: staged before anything moves, so a full disk
    # fails here and leaves the folder as it was (renames need none)
    staged_sidecar = stage_text(sidecar_path(final), _json_text(sidecar.to_json()))
    try:
        moves = list(zip(companions(staged_file), companions(final)))
        if moves:
            final.unlink(missing_ok=True)
            sidecar_path(final).unlink(missing_ok=True)
        for staged, placed in moves:
            os.replace(staged, placed)
        _replace(staged_file, final)
        os.replace(staged_sidecar, sidecar_path(final))
    except BaseException:
        staged_sidecar.unlink(missing_ok=True)
        raise


def _replace(staged: Path, final: Path) -> None:
    """os.replace, also for a folder artifact over an earlier one (a rename cannot replace a folder that has
    files): the old folder is renamed aside first and removed once the new one is in place."""
    if not (staged.is_dir() and final.is_dir()):
        os.replace(staged, final)
        return
    old = final.with_name(f".{final.name}.old-{os.getpid()}")
    os.replace(final, old)
    os.replace(staged, final)
    shutil.rmtree(old, ignore_errors=True)
