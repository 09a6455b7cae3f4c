"""Device rows checked by their runtime's backend: a scheme the runtime cannot honour is refused, never ignored."""

from __future__ import annotations

from collections.abc import Iterable

from edgekit.backends.registry import backend_for_runtime
from edgekit.catalog.loader import device_files, schemes
from edgekit.errors import EdgekitError


def check_device_rules(names: Iterable[str] | None = None) -> None:
    """Refuse a device row (of the devices named, or all) whose scheme its runtime's backend cannot honour."""
    table = device_files()
    for name in table if names is None else names:
        device, where = table[name]
        for runtime, rule in device.runtimes.items():
            backend = backend_for_runtime(runtime)
            problems = backend.scheme_problems(schemes()[rule.scheme], rule) if backend else []
            if problems:
                raise EdgekitError(
                    f"Device {device.name} ({where}) asks {runtime} for scheme '{rule.scheme}', which it cannot "
                    f"honour: {'; '.join(problems)}.",
                    hint=f"Pick a scheme from targets/schemes.yaml that {runtime} supports.",
                )
