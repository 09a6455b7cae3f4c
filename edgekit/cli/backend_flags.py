"""The backends' own options as flags of `edgekit export` (and, for engine settings, `edgekit build-engine`).

No runtime's flag is written here: each comes from a field of a backend's options model
(edgekit.backends.options), so a new backend's options reach the CLI from its own folder.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from typing import Any

import click
from pydantic.fields import FieldInfo

_PREFIX = "backend_option__"  # the keyword each flag's value arrives under, apart from the command's own


def _fields(engine_only: bool) -> dict[str, tuple[FieldInfo, dict[str, FieldInfo]]]:
    """Every backend's option fields by name: the first declaration (its description and type make the flag) and
    each runtime's own (its default)."""
    from edgekit.backends.registry import backends

    found: dict[str, tuple[FieldInfo, dict[str, FieldInfo]]] = {}
    for backend in backends().values():
        for name, info in backend.options.model_fields.items():
            if engine_only and not _extra(info).get("engine"):
                continue
            found.setdefault(name, (info, {}))[1][backend.runtime] = info
    return found


def _default(declared: dict[str, FieldInfo]) -> str:
    """The flag's default for its help: one value, or each runtime's where they differ."""
    values = {runtime: info.default for runtime, info in declared.items()}
    if len(set(map(repr, values.values()))) == 1:
        value = next(iter(values.values()))
        return "" if value is None else f" (default: {value})"
    return " (default: " + ", ".join(f"{value} for {runtime}" for runtime, value in values.items()) + ")"


def _extra(info: FieldInfo) -> dict[str, Any]:
    return info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}


def _option(name: str, info: FieldInfo, declared: dict[str, FieldInfo]) -> Callable:
    extra = _extra(info)
    dashed = str(extra.get("flag", name)).replace("_", "-")
    dest = _PREFIX + name
    scope = f"{', '.join(declared)} targets: "
    if info.annotation is bool:
        # a switch that is on by default is offered as --no-NAME; one that is off, as --NAME
        on = info.default is True
        flag_name = f"--no-{dashed}" if on else f"--{dashed}"
        said = f"{info.description} (on unless this flag is given)" if on else str(info.description)
        return click.option(flag_name, dest, flag_value=not on, default=None, help=scope + said)
    repeated = typing.get_origin(info.annotation) is tuple
    shown = "" if repeated else _default(declared)
    kind: Any = info.annotation if info.annotation in (int, float) else None
    if typing.get_origin(info.annotation) is typing.Literal:
        kind = click.Choice(typing.get_args(info.annotation))
    return click.option(
        f"--{dashed}",
        dest,
        multiple=repeated,
        type=kind,
        metavar=extra.get("metavar"),
        help=f"{scope}{info.description}{shown}",
    )


def backend_option_flags(engine_only: bool = False) -> Callable:
    """Decorate a command with a flag per backend option (only engine-build settings with `engine_only`)."""

    def decorate(command: Callable) -> Callable:
        for name, (info, declared) in reversed(list(_fields(engine_only).items())):
            command = _option(name, info, declared)(command)
        return command

    return decorate


def given_backend_options(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Take the backend flags out of a command's keyword arguments: those the user gave, by option name."""
    given = {}
    for key in [k for k in kwargs if k.startswith(_PREFIX)]:
        value = kwargs.pop(key)
        if value is not None and value != ():
            given[key.removeprefix(_PREFIX)] = value
    return given
