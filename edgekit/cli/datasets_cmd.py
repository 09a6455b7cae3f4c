"""`edgekit datasets`: the built-in offline datasets, usable wherever DATA is taken."""

from __future__ import annotations

import click


@click.command("datasets")
def datasets_cmd() -> None:
    """List the built-in datasets (use them as --data builtin:NAME:SPLIT).

    Example: edgekit evaluate out/model.onnx --data builtin:digits:test
    """
    from edgekit.data import builtin_datasets

    known = builtin_datasets()
    if not known:
        click.echo("No built-in datasets are installed (they come with the edgekit_demo package).")
    for dataset in known.values():
        click.echo(f"builtin:{dataset.name}:SPLIT  {dataset.description}")
