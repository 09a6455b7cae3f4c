"""edgekit doctor: what this environment has of edgekit's stacks, against the versions edgekit was tested
with (the pins in its own package metadata and its --no-deps list), which targets export and run here, and
the command that fixes each gap."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from importlib import metadata
from typing import Any

from edgekit._lazy import NO_DEPS

# extras whose pinned build lives on another index: torch's CPU wheel (PyPI's torch is the CUDA build)
EXTRA_INDEX = {"torch": "--extra-index-url https://download.pytorch.org/whl/cpu"}


@dataclass(frozen=True)
class Package:
    name: str
    extra: str  # "core", an extra, or "--no-deps"
    tested: str
    installed: str | None
    fix: str | None  # the command that installs the tested version, when it is missing or differs
    optional: bool = False  # of an extra that `all` leaves out (llamacpp: it compiles llama.cpp at install)

    @property
    def status(self) -> str:
        if self.installed is None:
            return "optional" if self.optional else "missing"
        return "ok" if self.installed.split("+")[0] == self.tested.split("+")[0] else "differs"


def tested_versions() -> dict[str, str]:
    """The exact versions edgekit was tested with, by canonical package name: constraints.txt, shipped inside
    the wheel (setup.py copies it) or beside the package in a checkout."""
    from importlib import resources
    from pathlib import Path

    from packaging.utils import canonicalize_name

    shipped = resources.files("edgekit") / "constraints.txt"
    checkout = Path(__file__).resolve().parent.parent / "constraints.txt"
    text = shipped.read_text() if shipped.is_file() else checkout.read_text() if checkout.is_file() else ""
    pins = (line.split("#")[0].strip().partition("==") for line in text.splitlines())
    return {canonicalize_name(name): version for name, sep, version in pins if sep}


def packages() -> list[Package]:
    """Every package edgekit depends on (its ranges in the package metadata), with the version tested and the
    one installed."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    tested = tested_versions()
    requires = metadata.requires("edgekit") or []
    everything = next((Requirement(t).extras for t in requires if Requirement(t).name == "edgekit" and
                       'extra == "all"' in t), set())  # fmt: skip
    rows: dict[str, Package] = {}
    for text in requires:
        req = Requirement(text)
        exact = next((s.version for s in req.specifier if s.operator == "=="), None)
        pin = tested.get(canonicalize_name(req.name), exact)
        extra = re.search(r'extra == "([^"]+)"', text)
        group = extra.group(1) if extra else "core"
        if pin is None or group in ("all", "dev") or req.name in rows:
            continue
        index = f"{EXTRA_INDEX[group]} " if group in EXTRA_INDEX else ""
        command = f"pip install {index}-c constraints.txt " + (f"'edgekit[{group}]'" if extra else "edgekit")
        optional = bool(everything) and group not in everything and group != "core"
        rows[req.name] = Package(req.name, group, pin, _installed(req.name), command, optional)
    for spec in sorted(set(" ".join(NO_DEPS.values()).split())):
        name, _, pin = spec.partition("==")
        if name not in rows:
            rows[name] = Package(name, "--no-deps", pin, _installed(name), f"pip install --no-deps {spec}")
    return [
        Package(p.name, p.extra, p.tested, p.installed, None if p.status == "ok" else p.fix, p.optional)
        for p in sorted(rows.values(), key=lambda p: (p.extra != "core", p.extra, p.name))
    ]


def _installed(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def report() -> dict[str, Any]:
    """The doctor's findings as JSON: packages, targets (exports/runs here, why not), warnings."""
    from edgekit.catalog import local_device, targets
    from edgekit.dispatch import availability

    rows = [{**asdict(p), "status": p.status} for p in packages()]
    target_rows = []
    for target in targets().values():
        here = availability(target)
        target_rows.append({"name": target.name, "exports_here": here.exports_here, "runs_here": here.runs_here,
                            "why_not": here.reason})  # fmt: skip
    warnings = []
    if _installed("openvino-telemetry"):
        warnings.append(
            "openvino-telemetry is installed: NNCF and OpenVINO's converter would send usage events from other "
            "programs; edgekit blocks it in its own process (pip uninstall openvino-telemetry removes it)"
        )
    return {
        "schema_version": "1",
        "edgekit": metadata.version("edgekit"),
        "device": local_device().name,
        "packages": rows,
        "targets": target_rows,
        "warnings": warnings,
    }
