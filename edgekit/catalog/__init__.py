"""The target and device catalog: YAML data, validated; nothing heavy is imported here."""

from edgekit.catalog.detect import local_device
from edgekit.catalog.loader import devices, get_device, get_target, schemes, targets
from edgekit.catalog.resolve import resolve
from edgekit.catalog.schema import Recipe

__all__ = ["Recipe", "devices", "get_device", "get_target", "local_device", "resolve", "schemes", "targets"]
