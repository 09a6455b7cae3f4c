"""ssh://user@host[:port] with the OpenSSH client: every remote argument is shell-quoted."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path
from typing import IO

from edgekit.errors import UsageError
from edgekit.transport.base import CommandResult, DeviceError, RemoteTransport

_URL = re.compile(r"^ssh://(?:(?P<user>[^@/]+)@)?(?P<host>[^:/]+)(?::(?P<port>\d+))?/?$")


class SshTransport(RemoteTransport):
    def __init__(
        self,
        host: str,
        user: str | None = None,
        port: int = 22,
        identity: str | None = None,
        python: str | None = None,
        timeout: float = 600.0,
        connect_timeout: int = 10,
        options: tuple[str, ...] = (),
    ) -> None:
        super().__init__(timeout)
        self.host, self.user, self.port, self.identity = host, user, port, identity
        self._python = python or "python3"
        self.name = f"ssh://{user + '@' if user else ''}{host}:{port}"
        self.base = [
            "-p",
            str(port),
            "-o",
            "BatchMode=yes",
            "-o",
            f"ConnectTimeout={connect_timeout}",
            "-o",
            "StrictHostKeyChecking=accept-new",
            "-o",
            "ServerAliveInterval=15",
        ]
        for opt in options:
            self.base += ["-o", opt]
        if identity:
            self.base += ["-i", identity]

    @classmethod
    def from_url(cls, url: str, **options) -> SshTransport:
        match = _URL.match(url)
        if not match:
            raise UsageError(
                f"Cannot read the ssh device '{url}'.", hint="Write ssh://user@host or ssh://user@host:port."
            )
        return cls(match["host"], match["user"], int(match["port"] or 22), **options)

    @property
    def target(self) -> str:
        return f"{self.user}@{self.host}" if self.user else self.host

    def run(self, argv: list[str], timeout: float | None = None) -> CommandResult:
        remote = " ".join(shlex.quote(a) for a in argv)
        result = self._exec(["ssh", *self.base, self.target, remote], timeout, "the command")
        if result.returncode == 255:
            reason = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "ssh failed"
            raise DeviceError(
                f"Cannot reach {self.name}: {reason}",
                hint="Check the host, port, user and key (ssh must log in without a password: BatchMode).",
            )
        return result

    streams = True

    def start(self, argv: list[str], stderr: IO[bytes]) -> subprocess.Popen:
        return self._popen(["ssh", *self.base, self.target, " ".join(shlex.quote(a) for a in argv)], stderr)

    def _scp(self, src: str, dst: str, what: str) -> None:
        result = self._exec(["scp", "-q", "-r", "-P", str(self.port), *self.base[2:], src, dst], None, what)
        if result.returncode != 0:
            raise DeviceError(f"Cannot {what} ({self.name}): {result.stderr.strip()}")

    def push(self, local: Path, name: str | None = None) -> str:
        remote = f"{self.workdir}/{name or Path(local).name}"
        self._scp(str(local), f"{self.target}:{shlex.quote(remote)}", f"copy {Path(local).name} to the device")
        return remote

    def fetch(self, remote: str, local: Path) -> None:
        self._scp(f"{self.target}:{shlex.quote(remote)}", str(local), f"copy {Path(remote).name} back")

    def python(self) -> str:
        return self._python
