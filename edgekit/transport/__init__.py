"""Transports move files to a device and run commands there: local, ssh://user@host[:port], adb://SERIAL.

Timing is always measured on the device by the worker, never across the link.
"""

from __future__ import annotations

from edgekit.errors import UsageError
from edgekit.transport.base import CommandResult, Transport


def open_transport(device: str, **options) -> Transport:
    """A transport for a --device string."""
    if device in ("local", "", None):
        from edgekit.transport.local import LocalTransport

        return LocalTransport(**{k: v for k, v in options.items() if k in ("python", "timeout")})
    if device.startswith("ssh://"):
        from edgekit.transport.ssh import SshTransport

        return SshTransport.from_url(device, **options)
    if device.startswith("adb://"):
        from edgekit.transport.adb import AdbTransport

        return AdbTransport.from_url(device, **{k: v for k, v in options.items() if k in ("adb", "timeout")})
    raise UsageError(f"Unknown device '{device}'.", hint="Use local, ssh://user@host[:port] or adb://SERIAL.")


__all__ = ["CommandResult", "Transport", "open_transport"]
