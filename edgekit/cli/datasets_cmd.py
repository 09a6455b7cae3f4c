"""`edgekit datasets`: the built-in offline datasets, usable wherever DATA is taken."""
from __future__ import annotations

import click


@click.command("datasets")
def datasets_cmd() -> None:
    """List the built-in datasets (use them as --data builtin:NAME:SPLIT)."""
    from edgekit.datasets import BUILTIN

    for name, description in BUILTIN.items():
        click.echo(f"builtin:{name}:SPLIT  {description}")
