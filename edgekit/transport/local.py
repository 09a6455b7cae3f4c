"""This machine: a temporary folder, files used in place, the current Python."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import IO

from edgekit.transport.base import CommandResult, DeviceError, Transport


class LocalTransport(Transport):
    name = "local"

    def __init__(self, python: str | None = None, timeout: float = 600.0) -> None:
        super().__init__(timeout)
        self._python = python or sys.executable

    def make_workdir(self) -> str:
        return tempfile.mkdtemp(prefix="edgekit-bench-")

    def remove_workdir(self, path: str) -> None:
        shutil.rmtree(path, ignore_errors=True)

    def push(self, local: Path, name: str | None = None) -> str:
        return str(Path(local).resolve())  # used where it is: nothing to copy, no name to clash

    def fetch(self, remote: str, local: Path) -> None:
        try:
            shutil.copyfile(remote, local)
        except OSError as e:
            raise DeviceError(f"Cannot copy {remote} back: {e.strerror}.") from None

    def run(self, argv: list[str], timeout: float | None = None) -> CommandResult:
        return self._exec(argv, timeout, "the command")

    streams = True

    def start(self, argv: list[str], stderr: IO[bytes]) -> subprocess.Popen:
        return self._popen(argv, stderr)

    def python(self) -> str:
        return self._python
