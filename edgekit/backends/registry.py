"""The one table of backends, and everything derived from it: the route graph, supports(), runners by suffix,
a target's options checked against its backend's (and, when refused, named by whose they are).

Every sub-package of edgekit.backends that defines `BACKEND` is registered on first use; `register()`
adds one from elsewhere (a plugin, a test). Nothing heavy is imported: backends declare, steps import.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from edgekit.backends.base import Backend, Converter
from edgekit.backends.options import BackendOptions
from edgekit.errors import NoRouteError, UsageError, validation_message

# Formats a route starts from: every source loader maps its source kind onto one of these.
SOURCE_FORMATS = ("torch", "keras", "onnx")

_extra: dict[str, Backend] = {}


@functools.cache
def _builtin() -> tuple[Backend, ...]:
    import edgekit.backends as package

    found = []
    for info in pkgutil.iter_modules(package.__path__):
        if info.ispkg:
            module = importlib.import_module(f"{package.__name__}.{info.name}")
            if isinstance(getattr(module, "BACKEND", None), Backend):
                found.append(module.BACKEND)
    return tuple(found)


def backends() -> dict[str, Backend]:
    """Every registered backend, by runtime name."""
    out = {b.runtime: b for b in _builtin()}
    out.update(_extra)
    return out


def register(backend: Backend) -> None:
    """Add (or replace) a backend; routes, availability and runners see it at once."""
    _extra[backend.runtime] = backend


def unregister(runtime: str) -> None:
    _extra.pop(runtime, None)


def backend_for_runtime(runtime: str) -> Backend | None:
    return backends().get(runtime)


def backend_for_file(path: str | Path) -> Backend:
    """The backend that runs a file, by its suffix."""
    suffix = Path(path).suffix
    for backend in backends().values():
        if suffix in backend.suffixes:
            return backend
    raise UsageError(
        f"No runtime for '{suffix}' files in this version.", hint=f"Files edgekit runs: {', '.join(known_suffixes())}."
    )


def known_suffixes() -> list[str]:
    return [s for b in backends().values() for s in b.suffixes]


def converters() -> list[Converter]:
    return [c for b in backends().values() for c in b.converters]


def find_route(src: str, dst: str) -> list[Converter]:
    """Shortest chain of converters from format `src` to format `dst` (empty when they are equal)."""
    if src == dst:
        return []
    edges = converters()
    queue: deque[tuple[str, list[Converter]]] = deque([(src, [])])
    seen = {src}
    while queue:
        node, path = queue.popleft()
        for edge in edges:
            if edge.src == node and edge.dst not in seen:
                if edge.dst == dst:
                    return [*path, edge]
                seen.add(edge.dst)
                queue.append((edge.dst, [*path, edge]))
    raise NoRouteError(
        f"No converter route from a {src} model to {dst} in this version of edgekit.",
        hint=f"From {src}, edgekit can produce: {', '.join(sorted(reachable_formats(src))) or 'nothing'}. "
        f"Routes: {', '.join(f'{e.src}->{e.dst}' for e in edges)}.",
    )


def find_routes(src: str, dst: str, limit: int = 4) -> list[list[Converter]]:
    """Every chain of converters from `src` to `dst` without a repeated format, shortest first (a direct
    converter before a chain through another format), at most `limit`; NoRouteError when there is none."""
    if src == dst:
        return [[]]
    found: list[list[Converter]] = []
    queue: deque[tuple[str, list[Converter]]] = deque([(src, [])])
    while queue and len(found) < limit:
        node, path = queue.popleft()
        visited = {src, *(e.dst for e in path)}
        for edge in converters():
            if edge.src != node or edge.dst in visited:
                continue
            if edge.dst == dst:
                found.append([*path, edge])
            else:
                queue.append((edge.dst, [*path, edge]))
    return found[:limit] or [find_route(src, dst)]  # none: find_route's error says what is reachable


def reachable_formats(src: str) -> set[str]:
    edges = converters()
    out, frontier = {src}, [src]
    while frontier:
        node = frontier.pop()
        for edge in edges:
            if edge.src == node and edge.dst not in out:
                out.add(edge.dst)
                frontier.append(edge.dst)
    return out


def sources_for(dst: str) -> set[str]:
    """Source formats from which `dst` is reachable."""
    return {src for src in SOURCE_FORMATS if dst in reachable_formats(src)}


def supports(runtime: str, quantization: str) -> bool:
    """Whether a backend exists for `runtime`, something reaches its format, and it can apply `quantization`."""
    backend = backend_for_runtime(runtime)
    return backend is not None and bool(sources_for(backend.format)) and backend.quantizes(quantization)


def resolve_options(backend: Backend, given: Mapping[str, Any] | BackendOptions | None, target: str) -> BackendOptions:
    """The target's backend's options from what the user gave, defaults filled in; a key the backend does
    not have, or a value of the wrong kind, is a UsageError that says whose option it is."""
    model = backend.options
    if isinstance(given, BackendOptions):
        if not isinstance(given, model):
            raise UsageError(
                f"Target {target} runs on {backend.runtime}, whose options are {model.__name__}, "
                f"not {type(given).__name__}."
            )
        return given
    try:
        return model.model_validate(dict(given or {}))
    except ValidationError as e:
        unknown = [str(err["loc"][0]) for err in e.errors() if err["type"] == "extra_forbidden"]
        own = ", ".join(model.model_fields) or "none"
        if unknown:
            owners = {name: _owners(name) for name in unknown}
            said = "; ".join(f"{n}: {', '.join(o) + ' targets' if o else 'no runtime'}" for n, o in owners.items())
            raise UsageError(
                f"Target {target} runs on {backend.runtime}, which has no option {', '.join(unknown)} "
                f"(whose option it is: {said}).",
                hint=f"{backend.runtime}'s options: {own}.",
            ) from None
        problems = "; ".join(f"{err['loc'][0]}: {validation_message(err)}" for err in e.errors())
        raise UsageError(f"Bad {backend.runtime} option for {target}: {problems}.") from None


def _owners(name: str) -> list[str]:
    return [b.runtime for b in backends().values() if name in b.options.model_fields]
