"""`edgekit cache ls|prune`: the step cache of `edgekit run` (a pipeline's .edgekit-run, or a shared --cache)."""

from __future__ import annotations

import re
from pathlib import Path

import click

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _folder(where: str) -> Path:
    """A pipeline file's cache (beside it), or a cache folder itself."""
    from edgekit.release.pipeline import CACHE_DIR

    path = Path(where)
    folder = path.parent / CACHE_DIR if path.is_file() else path
    if not folder.is_dir():
        raise click.UsageError(f"{folder} is not a step cache (run a pipeline first, or name its --cache folder).")
    return folder


@click.group("cache")
def cache_cmd() -> None:
    """List or prune the step cache that `edgekit run` reuses.

    Example: edgekit cache ls examples/digits-pipeline.yaml
    """


@cache_cmd.command("ls")
@click.argument("where", type=click.Path(exists=True))
def ls_cmd(where) -> None:
    """Each entry of the cache of WHERE (a pipeline file or a cache folder): step, size, age, intact.

    Example: edgekit cache ls examples/digits-pipeline.yaml
    """
    import time

    from rich.console import Console
    from rich.table import Table

    from edgekit.release.stepcache import entries

    found = entries(_folder(where))
    table = Table("key", "step", "size", "age", "intact")
    now = time.time()
    for e in found:
        age = now - e.written
        shown = f"{age / 3600:.1f} h" if age >= 3600 else f"{age / 60:.0f} min"
        table.add_row(e.key[:12], e.step, f"{e.size_bytes / 1e6:.2f} MB", shown, "yes" if e.intact else "[red]altered")
    Console(width=max(140, Console().width)).print(table)
    click.echo(f"{len(found)} entries, {sum(e.size_bytes for e in found) / 1e6:.1f} MB")


@cache_cmd.command("prune")
@click.argument("where", type=click.Path(exists=True))
@click.option("--older-than", required=True, help="Age, e.g. 30m, 12h, 7d: entries written before are removed.")
def prune_cmd(where, older_than) -> None:
    """Remove the entries of WHERE's cache older than --older-than (and any that were altered).

    Example: edgekit cache prune examples/digits-pipeline.yaml --older-than 7d
    """
    from edgekit.release.stepcache import prune

    m = _DURATION.match(older_than.strip())
    if not m:
        raise click.UsageError(f"--older-than {older_than}: give a number and a unit, e.g. 30m, 12h or 7d.")
    removed = prune(_folder(where), float(m[1]) * _SECONDS[m[2]])
    click.echo(f"removed {len(removed)} entries ({sum(e.size_bytes for e in removed) / 1e6:.1f} MB)")
