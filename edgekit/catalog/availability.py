"""Can a target be exported and run on this machine, and if not, why not."""
from __future__ import annotations

from dataclasses import dataclass

from edgekit._lazy import EXTRAS, available
from edgekit.catalog.detect import has_nvidia_gpu
from edgekit.catalog.schema import Target

_HARDWARE = {"nvidia-gpu": (has_nvidia_gpu, "an NVIDIA GPU")}


@dataclass(frozen=True)
class Availability:
    runs_here: bool
    exports_here: bool
    reason: str  # empty when both are true


def availability(target: Target) -> Availability:
    from edgekit.quantize import supports
    from edgekit.route import sources_for
    from edgekit.runners import RUNNERS

    missing = [m for m in target.requires.modules if not available(m)]
    no_hardware = [label for hw in target.requires.hardware for check, label in [_HARDWARE[hw]] if not check()]
    has_runner = target.suffix in RUNNERS
    has_route = bool(sources_for(target.format)) and supports(target.format, target.quantization)
    reasons = [f"needs {label}" for label in no_hardware]
    if missing:
        extras = sorted({EXTRAS[m] for m in missing if m in EXTRAS})
        how = f" (pip install 'edgekit[{','.join(extras)}]')" if extras else " (not installed)"
        reasons.append(f"needs {', '.join(missing)}{how}")
    if not (has_runner and has_route):
        reasons.append("not built in this version of edgekit")
    return Availability(has_runner and not missing and not no_hardware, has_route and not missing, "; ".join(reasons))
