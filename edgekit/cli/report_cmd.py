"""`edgekit report`: a self-contained HTML page from evaluate, benchmark, pipeline and demo JSON results."""

from __future__ import annotations

import click


@click.command("report")
@click.argument("results", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--output", "-o", "out", required=True, type=click.Path(), help="The HTML file to write.")
@click.option("--title", default="edgekit report", show_default=True)
def report_cmd(results, out, title) -> None:
    """Comparison table, accuracy vs latency vs size (Pareto front marked), latency per device; no network
    needed to view it.

    Example: edgekit report eval-int8.json bench.json -o report.html
    """
    from edgekit.release.report import write_report

    click.echo(write_report(list(results), out, title))
