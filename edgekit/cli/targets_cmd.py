"""`edgekit targets`: every target, what it produces, and whether it runs here (and why not)."""

from __future__ import annotations

import json

import click


@click.command("targets")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def targets_cmd(as_json: bool) -> None:
    """List every export target and whether it can run on this machine.

    Example: edgekit targets --json
    """
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from edgekit.catalog import local_device, targets
    from edgekit.dispatch import availability, check_device_rules

    check_device_rules()  # the whole catalog is checked, device schemes against their backends included
    rows = [(t, availability(t)) for t in targets().values()]
    if as_json:
        click.echo(
            json.dumps(
                [
                    {
                        "name": t.name,
                        "runtime": t.runtime,
                        "file": t.suffix,
                        "description": t.description,
                        "runs_here": a.runs_here,
                        "exports_here": a.exports_here,
                        "why_not": a.reason,
                        **(
                            {"engine": t.engine.suffix, "engine_here": a.engine_here, "engine_why_not": a.engine_reason}
                            if t.engine
                            else {}
                        ),
                    }
                    for t, a in rows
                ],
                indent=2,
            )
        )
        return
    table = Table(title=f"edgekit targets (this machine: {local_device().name})")
    for col in ("target", "file", "what it is", "here", "why not"):
        table.add_column(col, overflow="fold")
    for t, a in rows:
        here = "[green]yes[/]" if a.runs_here and a.exports_here else ("runs only" if a.runs_here else "[red]no[/]")
        why = a.reason
        if t.engine is not None and a.exports_here:
            here = "[green]yes[/]" if a.engine_here else f"{t.suffix} only"
            why = "; ".join(r for r in (a.reason, a.engine_reason) if r)
        table.add_row(t.name, t.suffix, escape(t.description), here, escape(why))
    Console(width=max(140, Console().width)).print(table)
