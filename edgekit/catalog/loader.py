"""Load and validate the YAML catalog: targets/*.yaml, targets/schemes.yaml, targets/quantizations.yaml,
targets/devices/*.yaml, and a
user catalog laid out the same way on top (EDGEKIT_CATALOG or `edgekit --catalog DIR`)."""

from __future__ import annotations

import functools
import importlib.util
import os
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel

from edgekit.catalog.schema import Device, QuantizationKind, Scheme, Target
from edgekit.errors import EdgekitError, UsageError, unknown_name
from edgekit.yamlfile import node_at, read_yaml, validate

M = TypeVar("M", bound=BaseModel)


def catalog_dir() -> Path:
    """The targets/ folder: beside the package in a checkout, inside it (edgekit._targets) when installed."""
    checkout = Path(__file__).resolve().parents[2] / "targets"
    if (checkout / "devices").is_dir():
        return checkout
    spec = importlib.util.find_spec("edgekit._targets")  # a namespace package: data files only
    if spec is None or not spec.submodule_search_locations:
        raise EdgekitError("The target catalog (edgekit._targets) is missing from this installation.")
    return Path(next(iter(spec.submodule_search_locations)))


USER_CATALOG = "EDGEKIT_CATALOG"  # a folder of the user's own targets, schemes.yaml and devices/ (or --catalog)


def catalog_dirs() -> list[Path]:
    """The built-in catalog, then the user's (EDGEKIT_CATALOG): its files add to the built-in ones, and a
    target, scheme or device of the same name replaces the built-in one."""
    dirs = [catalog_dir()]
    user = os.environ.get(USER_CATALOG)
    if user:
        folder = Path(user)
        if not folder.is_dir():
            raise UsageError(
                f"The catalog folder {folder} ({USER_CATALOG} or --catalog) does not exist.",
                hint="It holds target YAML files, schemes.yaml and devices/*.yaml, laid out like targets/.",
            )
        dirs.append(folder)
    return dirs


_HINT = "Catalog files are laid out like the built-in ones (docs/catalog.md)."


def _load(model: type[M], path: Path) -> M:
    """A catalog file, validated as `model`: a YAML or schema error names the file, line and field (exit 2)."""
    data, root = read_yaml(path, "the catalog file")
    return validate(model, data or {}, path, root, hint=_HINT)


def _load_named(model: type[M], path: Path, what: str) -> dict[str, M]:
    """A catalog file mapping names to settings (schemes.yaml, quantizations.yaml), each validated as `model`."""
    data, root = read_yaml(path, "the catalog file")
    if not isinstance(data, dict):
        raise UsageError(f"{path} must map {what} names to their settings.", hint=_HINT)
    return {name: validate(model, item, path, node_at(root, [name]), hint=_HINT) for name, item in data.items()}


_NAMED_FILES = ("schemes.yaml", "quantizations.yaml")


@functools.cache
def targets() -> dict[str, Target]:
    """Every target, by CLI name, in the order the YAML files sort."""
    out: dict[str, Target] = {}
    kinds = quantizations()
    for path in (p for folder in catalog_dirs() for p in sorted(folder.glob("*.yaml"))):
        if path.name in _NAMED_FILES:
            continue
        target = _load(Target, path)
        if target.name != path.stem:
            raise EdgekitError(f"Catalog file {path} names target '{target.name}'; the file must be {target.name}.yaml")
        if target.quantization not in kinds:
            raise UsageError(
                f"Catalog file {path}: target {target.name} names quantization '{target.quantization}', "
                f"which no quantizations.yaml declares; known: {', '.join(kinds)}.",
                hint="Declare a new kind in quantizations.yaml beside the targets (docs/catalog.md).",
            )
        out[target.name] = target
    return dict(sorted(out.items(), key=lambda kv: _order(kv[1], list(kinds))))


_RUNTIME_ORDER = ("litert", "onnxruntime", "tensorrt", "openvino", "torch-lite", "executorch")


def _order(target: Target, kinds: list[str]) -> tuple[int, str, int]:
    """By runtime (the documented ones first, then any other by name), then by kind of quantization."""
    known = target.runtime in _RUNTIME_ORDER
    rank = _RUNTIME_ORDER.index(target.runtime) if known else len(_RUNTIME_ORDER)
    return rank, "" if known else target.runtime, kinds.index(target.quantization)


@functools.cache
def quantizations() -> dict[str, QuantizationKind]:
    """The kinds of quantization targets may name, in listing order (the built-in file, then the user's)."""
    out: dict[str, QuantizationKind] = {}
    for path in (folder / "quantizations.yaml" for folder in catalog_dirs()):
        if path.is_file():
            out.update(_load_named(QuantizationKind, path, "quantization"))
    return out


@functools.cache
def schemes() -> dict[str, Scheme]:
    out: dict[str, Scheme] = {}
    for path in (folder / "schemes.yaml" for folder in catalog_dirs()):
        if path.is_file():
            out.update(_load_named(Scheme, path, "scheme"))
    return out


@functools.cache
def device_files() -> dict[str, tuple[Device, Path]]:
    """Every device profile with the file it came from (a user catalog's replaces a built-in one of its name),
    its schemes and kinds of quantization checked against the catalog's; the runtime's own rules for its row are
    checked by edgekit.dispatch.check_device_rules."""
    out: dict[str, tuple[Device, Path]] = {}
    known_schemes = schemes()
    for path in (p for folder in catalog_dirs() for p in sorted((folder / "devices").glob("*.yaml"))):
        device = _load(Device, path)
        for runtime, rule in device.runtimes.items():
            if rule.scheme not in known_schemes:
                raise EdgekitError(
                    f"Device {device.name} ({path}) uses unknown scheme '{rule.scheme}' for {runtime}; "
                    f"known: {', '.join(known_schemes)}"
                )
            unknown = [q for q in rule.quantizations or () if q not in quantizations()]
            if unknown:
                raise EdgekitError(
                    f"Device {device.name} ({path}) lists unknown quantization {', '.join(unknown)} for {runtime}; "
                    f"known: {', '.join(quantizations())}"
                )
        out[device.name] = (device, path)
    return out


def devices() -> dict[str, Device]:
    """Every device profile, by name."""
    return {name: device for name, (device, _) in device_files().items()}


def get_target(name: str) -> Target:
    known = targets()
    if name not in known:
        raise unknown_name("target", name, known)
    return known[name]


def get_device(name: str) -> Device:
    known = devices()
    if name not in known:
        raise unknown_name("device profile", name, known)
    return known[name]
