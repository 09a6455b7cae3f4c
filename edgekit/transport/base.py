"""The Transport interface: a scratch folder on the device, push, run (with a timeout), cleanup."""

from __future__ import annotations

import abc
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from edgekit.errors import EdgekitError, UsageError


class DeviceError(EdgekitError):
    """The device is unreachable, timed out, or lacks what the benchmark needs (exit 1)."""


@dataclass
class CommandResult:
    returncode: int
    stdout: str
    stderr: str


class Transport(abc.ABC):
    name = "device"

    def __init__(self, timeout: float = 600.0) -> None:
        self.timeout = timeout
        self.workdir: str | None = None

    def __enter__(self) -> Transport:
        self.workdir = self.make_workdir()
        return self

    def __exit__(self, *exc) -> None:
        if self.workdir:
            self.remove_workdir(self.workdir)

    @abc.abstractmethod
    def make_workdir(self) -> str: ...

    @abc.abstractmethod
    def remove_workdir(self, path: str) -> None: ...

    @abc.abstractmethod
    def push(self, local: Path, name: str | None = None) -> str:
        """Copy a file or folder into the work folder (as `name`, default its own name); return its path there."""

    @abc.abstractmethod
    def fetch(self, remote: str, local: Path) -> None:
        """Copy a file from the device back to `local` (DeviceError when it is not there)."""

    @abc.abstractmethod
    def run(self, argv: list[str], timeout: float | None = None) -> CommandResult:
        """Run a command (argument list, quoted for the device's shell) on the device."""

    def python(self) -> str:
        return "python3"

    def find_tool(self, candidates: tuple[str, ...]) -> str | None:
        """The first of `candidates` (a command on the device's PATH, or a path) that exists there as a program."""
        for path in candidates:
            probe = self.run(["sh", "-c", 'command -v "$1" >/dev/null 2>&1 || [ -x "$1" ]', "sh", path], timeout=60)
            if probe.returncode == 0:
                return path
        return None

    streams = False  # whether start() carries binary frames both ways (here and over ssh; not adb's shell)

    def start(self, argv: list[str], stderr: IO[bytes]) -> subprocess.Popen:
        """Start a command on the device with binary pipes to its stdin and stdout (edgekit.bench.remote's worker);
        its stderr goes to `stderr`. Only where `streams`."""
        raise self.cannot_stream()

    def cannot_stream(self) -> UsageError:
        return UsageError(
            f"{self.name} cannot run a file for evaluation: its shell does not carry binary input.",
            hint="Evaluate on this machine or over ssh (--device ssh://user@host); benchmark works on this device.",
        )

    def _popen(self, cmd: list[str], stderr: IO[bytes]) -> subprocess.Popen:
        try:
            return subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr)
        except FileNotFoundError as e:
            raise DeviceError(
                f"Cannot run {cmd[0]}: {e.strerror}.", hint=f"Install {cmd[0]} or put it on PATH."
            ) from None

    def _exec(self, cmd: list[str], timeout: float | None, what: str) -> CommandResult:
        try:
            proc = subprocess.run(
                cmd,
                capture_output=True,
                text=True,
                errors="replace",  # a runtime may print raw bytes of the file it failed to read
                timeout=timeout or self.timeout,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            raise DeviceError(
                f"{what} on {self.name} did not answer within {timeout or self.timeout:.0f}s.",
                hint="Is the device hung or asleep? Results already taken are kept.",
            ) from None
        except FileNotFoundError as e:
            raise DeviceError(
                f"Cannot run {cmd[0]}: {e.strerror}.", hint=f"Install {cmd[0]} or put it on PATH."
            ) from None
        return CommandResult(proc.returncode, proc.stdout, proc.stderr)


class RemoteTransport(Transport):
    """A device reached through a remote shell: a `mktemp -d` work folder under tmp_root, removed at the end."""

    tmp_root = "/tmp"

    def make_workdir(self) -> str:
        result = self.run(["mktemp", "-d", f"{self.tmp_root}/edgekit-XXXXXX"], timeout=60)
        if result.returncode != 0 or not result.stdout.strip():
            raise DeviceError(f"Cannot create a work folder on {self.name}: {result.stderr.strip()}")
        return result.stdout.strip()

    def remove_workdir(self, path: str) -> None:
        try:
            self.run(["rm", "-rf", path], timeout=60)
        except DeviceError:
            pass  # the device went away; nothing more to clean
