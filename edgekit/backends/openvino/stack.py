"""Importing OpenVINO and NNCF with their usage telemetry off.

NNCF and OpenVINO's model converter send usage events to Google Analytics unless the user opted out
(openvino_telemetry, opt-out by default); edgekit talks to no network, so the telemetry module is made
unimportable before either loads, and both fall back to their built-in no-op stubs.
"""

from __future__ import annotations

import logging
import sys
from types import ModuleType

from edgekit._lazy import require


def import_stack(module: str, purpose: str) -> ModuleType:
    """`module` (openvino, nncf, or a submodule) with telemetry blocked; names the extra when missing."""
    sys.modules.setdefault("openvino_telemetry", None)  # type: ignore[arg-type]  # None: import raises ImportError
    imported = require(module, purpose, extra="openvino")
    logging.getLogger("nncf").setLevel(logging.ERROR)  # its INFO tables go to stdout; edgekit reports the facts
    return imported
