"""adb://SERIAL: an Android device through the adb client; every shell argument is quoted."""

from __future__ import annotations

import shlex
from pathlib import Path

from edgekit.errors import UsageError
from edgekit.transport.base import CommandResult, DeviceError, RemoteTransport

DEVICE_TMP = "/data/local/tmp"


class AdbTransport(RemoteTransport):
    tmp_root = DEVICE_TMP

    def __init__(self, serial: str, adb: str = "adb", timeout: float = 600.0) -> None:
        super().__init__(timeout)
        self.serial, self.adb = serial, adb
        self.name = f"adb://{serial}"

    @classmethod
    def from_url(cls, url: str, **options) -> AdbTransport:
        serial = url[len("adb://") :].strip("/")
        if not serial:
            raise UsageError(f"Cannot read the adb device '{url}'.", hint="Write adb://SERIAL (see `adb devices`).")
        return cls(serial, **options)

    def _adb(self, *args: str, timeout: float | None = None, what: str = "adb") -> CommandResult:
        result = self._exec([self.adb, "-s", self.serial, *args], timeout, what)
        text = (result.stderr + result.stdout).lower()
        if result.returncode != 0 and (
            ("not found" in text and "device" in text) or "no devices" in text or "offline" in text
        ):
            raise DeviceError(
                f"Cannot reach {self.name}: {(result.stderr or result.stdout).strip()[:300]}",
                hint="Check `adb devices`: the device must be listed as 'device' (authorized, online).",
            )
        return result

    def run(self, argv: list[str], timeout: float | None = None) -> CommandResult:
        return self._adb("shell", " ".join(shlex.quote(a) for a in argv), timeout=timeout, what="the command")

    def push(self, local: Path, name: str | None = None) -> str:
        remote = f"{self.workdir}/{name or Path(local).name}"
        result = self._adb("push", str(local), remote, what=f"pushing {Path(local).name}")
        if result.returncode != 0:
            raise DeviceError(f"Cannot push {local} to {self.name}: {(result.stderr or result.stdout).strip()}")
        return remote

    def fetch(self, remote: str, local: Path) -> None:
        result = self._adb("pull", remote, str(local), what=f"pulling {Path(remote).name}")
        if result.returncode != 0:
            raise DeviceError(f"Cannot pull {remote} from {self.name}: {(result.stderr or result.stdout).strip()}")
