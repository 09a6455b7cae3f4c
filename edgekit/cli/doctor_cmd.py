"""`edgekit doctor`: check this environment against what edgekit was tested with, and say how to fix it."""

from __future__ import annotations

import json

import click


@click.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
def doctor_cmd(as_json: bool) -> None:
    """Which of edgekit's stacks import here, their versions against the tested ones, which targets export and
    run, and the command that fixes each gap.

    Example: edgekit doctor --json | python -c "import json,sys; print(json.load(sys.stdin)['device'])"
    """
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from edgekit.doctor import report

    found = report()
    if as_json:
        click.echo(json.dumps(found, indent=2))
        return
    console = Console()
    table = Table(title=f"edgekit {found['edgekit']} on {found['device']}: packages")
    for col in ("package", "for", "tested", "here", "fix"):
        table.add_column(col, overflow="fold")
    style = {"ok": "green", "differs": "yellow", "missing": "red", "optional": "dim"}
    for p in found["packages"]:
        absent = "not installed (optional)" if p["status"] == "optional" else "missing"
        here = f"[{style[p['status']]}]{p['installed'] or absent}[/]"
        table.add_row(p["name"], p["extra"], p["tested"], here, escape(p["fix"] or ""))
    console.print(table)
    ready = [t["name"] for t in found["targets"] if t["exports_here"] and t["runs_here"]]
    console.print(f"targets that export and run here ({len(ready)}/{len(found['targets'])}): {', '.join(ready)}")
    for t in found["targets"]:
        if t["name"] not in ready:
            console.print(f"  {t['name']}: {escape(t['why_not'] or '')}")
    for warning in found["warnings"]:
        console.print(f"[yellow]warning:[/] {escape(warning)}")
