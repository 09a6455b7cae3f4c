"""The target and device catalog: YAML data, validated; nothing heavy is imported here."""

from edgekit.catalog.detect import local_device
from edgekit.catalog.loader import device_files, devices, get_device, get_target, quantizations, schemes, targets
from edgekit.catalog.resolve import resolve
from edgekit.catalog.schema import Recipe


def clear_caches() -> None:
    """Forget the loaded catalog and the detected device (after the user catalog changed)."""
    for cached in (targets, schemes, quantizations, device_files, local_device):
        cached.cache_clear()


__all__ = [
    "Recipe",
    "clear_caches",
    "device_files",
    "devices",
    "get_device",
    "get_target",
    "local_device",
    "quantizations",
    "resolve",
    "schemes",
    "targets",
]
