"""The flags that reach a device over ssh, shared by the commands that run files there (benchmark, evaluate)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click


def ssh_flags(prefix: str = "") -> Callable[[Callable], Callable]:
    """--python, --identity and --ssh-option (repeatable), passed as python, identity, ssh_options; with a prefix
    (`run-on`: --run-on-python ...) for a command where the plain names belong to something else."""
    flag, name = (f"--{prefix}-", f"{prefix.replace('-', '_')}_") if prefix else ("--", "")
    options = (
        click.option(
            f"{flag}python", f"{name}python", help="Python on the device (ssh: default python3; local: this one)."
        ),
        click.option(f"{flag}identity", f"{name}identity", type=click.Path(), help="ssh private key."),
        click.option(
            f"{flag}ssh-option",
            f"{name}ssh_options",
            multiple=True,
            metavar="KEY=VALUE",
            help="Extra ssh -o option; repeatable.",
        ),
    )

    def decorate(command: Callable) -> Callable:
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


# how long a device may take to answer before it counts as hung (a command, or a reply of edgekit's worker)
timeout_flag = click.option(
    "--timeout",
    default=600.0,
    type=click.FloatRange(min=0, min_open=True),
    show_default=True,
    help="Seconds before a device that does not answer counts as hung.",
)


def transport_options(
    device: str,
    timeout: float,
    python: str | None,
    identity: str | None,
    ssh_options: tuple[str, ...],
    adb: str = "adb",
) -> dict[str, Any]:
    """The options edgekit.transport.open_transport takes for `device`, only those given (adb's for adb:// ones)."""
    options: dict[str, Any] = {"timeout": timeout}
    if device.startswith("adb://"):
        options["adb"] = adb
    if python:
        options["python"] = python
    if identity:
        options["identity"] = identity
    if ssh_options:
        options["options"] = tuple(ssh_options)
    return options
