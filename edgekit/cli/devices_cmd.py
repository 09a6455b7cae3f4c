"""`edgekit devices`: the device profiles, what each asks of every runtime, and which one this machine is."""

from __future__ import annotations

import json

import click


@click.command("devices")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def devices_cmd(as_json: bool) -> None:
    """List the device profiles (targets/devices) and the one detected here, with the rule that picked it.

    Example: edgekit devices --json | python -c "import json,sys; print(json.load(sys.stdin)['detected'])"
    """
    import platform

    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from edgekit.catalog import devices, local_device
    from edgekit.catalog.detect import cpu_flags, cpu_model
    from edgekit.dispatch import check_device_rules

    check_device_rules()  # every row, against its runtime's backend
    here = local_device()
    flags = cpu_flags()
    rules = {
        d.name: {r: {"scheme": rule.scheme, **({"engine": rule.engine} if rule.engine else {})}
                 for r, rule in d.runtimes.items()}
        for d in devices().values()
    }  # fmt: skip
    reason = (
        f"{cpu_model()} ({platform.machine()}) matches '{here.detect.explain()}'"
        + (f": has {', '.join(f for f in (*here.detect.all_of, *here.detect.any_of) if f in flags)}" if flags else "")
        if here.detect
        else ""
    )
    if as_json:
        click.echo(
            json.dumps(
                {
                    "schema_version": "1",
                    "detected": here.name,
                    "why": reason,
                    "devices": [
                        {
                            "name": d.name,
                            "description": d.description,
                            "arch": d.arch,
                            "os": d.os,
                            "transport": d.transport,
                            "detect": d.detect.explain() if d.detect else None,
                            "runtimes": rules[d.name],
                        }
                        for d in devices().values()
                    ],
                },
                indent=2,
            )
        )
        return
    table = Table(title=f"edgekit devices (this machine: {here.name})")
    for col in ("device", "what it is", "detected when", "runtimes: int8 scheme"):
        table.add_column(col, overflow="fold")
    for d in devices().values():
        name = f"[bold green]{d.name}[/]" if d.name == here.name else d.name
        runtimes = "\n".join(f"{r}: {v['scheme']}" for r, v in rules[d.name].items())
        table.add_row(name, escape(d.description), d.detect.explain() if d.detect else "--device only", runtimes)
    console = Console()
    console.print(table)
    if reason:
        console.print(f"detected {here.name}: {escape(reason)}")
