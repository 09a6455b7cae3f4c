"""`edgekit run PIPELINE.yaml`: export, evaluate, benchmark, gate and bundle as one declared, cached pipeline."""

from __future__ import annotations

import sys

import click


@click.command("run")
@click.argument("pipeline", type=click.Path())
@click.option("--quiet", "-q", is_flag=True)
def run_cmd(pipeline, quiet) -> None:
    """Run PIPELINE.yaml; steps whose inputs did not change come from the cache beside it (.edgekit-run/).

    Example: edgekit run examples/digits-pipeline.yaml
    """
    from edgekit.progress import Progress
    from edgekit.release.pipeline import GateFailed, run_pipeline

    try:
        result = run_pipeline(pipeline, Progress(quiet=quiet))
    except GateFailed as e:
        for failure in e.message.split("; "):
            click.secho(f"gate failed: {failure}", err=True, fg="red")
        sys.exit(1)
    ran = sum(not s["cached"] for s in result["steps"])
    click.echo(f"{pipeline}: {ran} step(s) ran, {len(result['steps']) - ran} cached; every gate passed")
    if "bundle" in result:
        click.echo(f"bundle: {result['bundle']}")
