"""`edgekit run PIPELINE.yaml`: export, evaluate, benchmark, gate and bundle as one declared, cached pipeline."""

from __future__ import annotations

import sys

import click

from edgekit.release.executor import EXECUTORS


@click.command("run")
@click.argument("pipeline", type=click.Path())
@click.option(
    "--executor",
    type=click.Choice(EXECUTORS),
    default="local",
    show_default=True,
    help="serial: one step after another in this process; local: independent steps side by side in worker "
    "processes; ray: steps as Ray tasks (pip install 'edgekit[ray]').",
)
@click.option("--jobs", "-j", type=int, default=None, help="Steps at once (default: the cores, or the cluster's CPUs).")
@click.option("--address", default=None, help="Ray cluster to join: auto, HOST:PORT or ray://HOST:PORT "
              "(default: a Ray of this machine only, on loopback).")  # fmt: skip
@click.option(
    "--cache",
    "cache",
    type=click.Path(file_okay=False),
    default=None,
    help="Step cache folder (default: .edgekit-run beside the pipeline; on Ray: one all nodes see).",
)
@click.option("--timeout", type=float, default=30, show_default=True, help="Seconds to wait for --address.")
@click.option("--quiet", "-q", is_flag=True)
def run_cmd(pipeline, executor, jobs, address, cache, timeout, quiet) -> None:
    """Run PIPELINE.yaml; steps whose inputs did not change come from the cache beside it (.edgekit-run/).
    A `matrix:` in the file sweeps settings: each combination of its values runs as its own pipeline.

    Example: edgekit run examples/digits-pipeline.yaml --jobs 2
    """
    from edgekit.progress import Progress
    from edgekit.release.pipeline import GateFailed
    from edgekit.release.run import run_file

    if address is not None and executor != "ray":
        raise click.UsageError("--address joins a Ray cluster: use it with --executor ray.")
    try:
        result = run_file(
            pipeline, Progress(quiet=quiet), executor=executor, jobs=jobs, address=address, cache=cache,
            timeout=timeout,
        )  # fmt: skip
    except GateFailed as e:
        if not quiet:
            _table(e.result)
        for failure in e.message.split("; "):
            click.secho(f"gate failed: {failure}", err=True, fg="red")
        sys.exit(1)
    if not quiet:
        _table(result)
    if "search" in result:  # a search: section chose the files
        from edgekit.cli.search_cmd import print_choices

        print_choices(result["search"])
        click.echo(f"report: {result['report']}")
        return
    ran = sum(not s["cached"] for s in result["steps"])
    click.echo(f"{pipeline}: {ran} step(s) ran, {len(result['steps']) - ran} cached; every gate passed")
    for combination in result.get("combinations", [result]):
        if "bundle" in combination:
            click.echo(f"bundle: {combination['bundle']}")
    click.echo(f"report: {result['report']}")


def _table(result: dict) -> None:
    """One row per file of each combination: size, accuracy and its drop, p90 per device, its gates (a search's
    trials, for a search: section)."""
    from rich.console import Console
    from rich.table import Table

    if "search" in result:
        from edgekit.cli.search_cmd import print_trials

        print_trials(result["search"])
        return

    combinations = result.get("combinations", [result])
    devices = sorted({d for c in combinations for t in c.get("targets", {}).values() for d in t["p90_ms"]})
    sweep = "combinations" in result
    table = Table(*(["combination"] if sweep else []), "target", "size", "accuracy", "drop",
                  *[f"p90 {d}" for d in devices], "gates")  # fmt: skip
    for combination in combinations:
        for target, row in combination.get("targets", {}).items():
            cells = [
                f"{row['size_bytes'] / 1e6:.3f} MB",
                "-" if row["accuracy"] is None else f"{row['accuracy']:.3f}",
                "-" if row["accuracy_drop_pts"] is None else f"{row['accuracy_drop_pts']:+.2f} pt",
                *["-" if row["p90_ms"].get(d) is None else f"{row['p90_ms'][d]:.3f} ms" for d in devices],
                "[red]failed" if row["gate_failures"] else "passed",
            ]
            table.add_row(*([combination["name"]] if sweep else []), target, *cells)
    if table.rows:
        Console(width=max(140, Console().width)).print(table)
