"""Dispatch to the backend that runs a file or makes a target: an artifact's files, opening a runner, the source
model's runner, what this machine can export and run, device rows checked by their runtime's backend.

This layer sits above both the backends and the packages they build on (catalog, runners, artifact), which
never import the backend registry themselves.
"""

from edgekit.dispatch.availability import Availability, availability
from edgekit.dispatch.files import artifact_files, require_artifact
from edgekit.dispatch.rules import check_device_rules
from edgekit.dispatch.runners import open_runner, source_runner

__all__ = [
    "Availability",
    "artifact_files",
    "availability",
    "check_device_rules",
    "open_runner",
    "require_artifact",
    "source_runner",
]
