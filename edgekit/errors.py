"""One exception family for edgekit, and the exit codes the CLI maps them to.

Every user-facing failure says what was wrong, what is available, and what to do.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

# a line that only names a C++ source location: one pattern, kept in the worker, which runs without edgekit

EXIT_OK = 0
EXIT_FAILED = 1  # the job ran and failed, or a quality gate was missed
EXIT_USAGE = 2  # bad usage or bad input: nothing was written


class EdgekitError(Exception):
    """Base of every error edgekit raises on purpose."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n{self.hint}" if self.hint else self.message

    def __reduce__(self):
        """Pickled with its attributes, whatever the subclass's constructor takes: a step's error crosses from
        a worker process or a Ray node back to the driver intact."""
        return _rebuild, (type(self), self.args, self.__dict__)


def _rebuild(cls: type[EdgekitError], args: tuple, state: dict) -> EdgekitError:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


class UsageError(EdgekitError):
    """The user asked for something malformed or impossible (exit 2)."""

    exit_code = EXIT_USAGE


class ModelLoadError(UsageError):
    """A model file or folder is missing, corrupt or of an unknown kind."""


class UnknownNameError(UsageError):
    """A target, device or dataset name that does not exist."""


class DataError(UsageError):
    """Calibration or evaluation data that does not fit the model."""


class UnsupportedOpError(UsageError):
    """The model uses an op that the target runtime or device has no kernel for (exit 2)."""


class NoRouteError(UsageError):
    """No chain of converters leads from the source format to the target."""


class MissingDependencyError(UsageError):
    """An optional stack is not installed; names the extra to install."""

    def __init__(self, module: str, extra: str, purpose: str, command: str | None = None) -> None:
        command = command or f"pip install 'edgekit[{extra}]'"
        super().__init__(
            f"{purpose} needs the Python package '{module}', which is not installed.",
            hint=f"Install it with: {command}",
        )


class BenchmarkError(EdgekitError):
    """A benchmark stopped part-way (a device failed or timed out, exit 1); `runs` holds what was completed."""

    def __init__(self, message: str, runs: list) -> None:
        super().__init__(message)
        self.runs = runs


class ConversionError(EdgekitError):
    """A converter ran and failed (exit 1): the message names the step and the cause."""


class ParityError(EdgekitError):
    """The exported file disagrees with its source beyond the target's tolerance (exit 1)."""


class GateError(ParityError):
    """No per-layer float fallback makes the file pass its gate (exit 1)."""


def require_file(path: Path, what: str, error: type[UsageError] = UsageError, hint: str | None = None) -> Path:
    """`path`, when it is an existing file; else `error` saying that it is missing or is a folder."""
    if path.is_dir():
        raise error(f"{what} {path} is a folder, not a file.", hint=hint)
    if not path.is_file():
        raise error(f"{what} {path} does not exist.", hint=hint)
    return path


# a line that only names a C++ source location (OpenVINO's "Exception from src/...:123:"); the benchmark worker,
# which runs without edgekit on devices, has its own copy (a test keeps the two equal)
WHERE = re.compile(r"^(Exception from \S+:\d+:|Check '.*' failed at \S+:\d+:)$")


def first_line(e: BaseException, limit: int = 300) -> str:
    """The first line of an exception's text that says what went wrong (libraries put the cause first, details
    after; lines that only name a C++ source location are skipped)."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return next((ln for ln in lines if not WHERE.match(ln)), lines[0] if lines else type(e).__name__)[:limit]


def validation_message(error: Mapping[str, Any]) -> str:
    """A pydantic error's message without the "Value error, " that pydantic puts before a validator's own words."""
    message = str(error["msg"])
    return message.removeprefix("Value error, ").removeprefix("Assertion failed, ")


_PACKAGE_DIR = str(Path(__file__).resolve().parent)


def is_user_frame(filename: str) -> bool:
    """Whether a traceback frame is the user's code: not an installed library, not edgekit itself
    (judged by edgekit's own folder, so a user's project under a folder named edgekit still counts)."""
    if "site-packages" in filename or "dist-packages" in filename:
        return False
    try:
        return not str(Path(filename).resolve()).startswith(_PACKAGE_DIR + "/")
    except OSError:
        return True


def unknown_name(kind: str, name: str, known: Iterable[str]) -> UnknownNameError:
    """Build an error for an unknown name, suggesting the nearest known ones."""
    known = sorted(known)
    near = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f"Did you mean {', '.join(near)}? " if near else ""
    return UnknownNameError(f"Unknown {kind} '{name}'.", hint=f"{hint}Known: {', '.join(known)}.")
