"""Recognize this machine as one of the device profiles, from its architecture and CPU flags."""

from __future__ import annotations

import functools
import platform
import shutil
from pathlib import Path

from edgekit.catalog.loader import devices
from edgekit.catalog.schema import Device
from edgekit.errors import EdgekitError


def cpu_flags() -> set[str]:
    """CPU feature flags of this machine (x86 'flags', arm 'Features' in /proc/cpuinfo)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags.update(value.split())
    return flags


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def has_nvidia_gpu() -> bool:
    return Path("/dev/nvidia0").exists() or shutil.which("nvidia-smi") is not None


@functools.cache
def local_device() -> Device:
    """The first device profile whose detect rule matches this machine."""
    arch, flags = platform.machine(), cpu_flags()
    arch = {"arm64": "aarch64", "AMD64": "x86_64"}.get(arch, arch)
    for device in devices().values():
        if device.detect and device.detect.matches(arch, flags):
            return device
    raise EdgekitError(
        f"No device profile matches this machine ({arch}); name one with --device.",
        hint=f"Known: {', '.join(devices())}",
    )
