"""`edgekit demo`: the built-in end-to-end run (see edgekit_demo.demo), added to the CLI by entry point."""

from __future__ import annotations

import click


@click.command("demo")
@click.option(
    "--output",
    "-o",
    "out_dir",
    default="demo-out",
    show_default=True,
    type=click.Path(),
    help="Folder for the exported files and results.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress output.")
def demo_cmd(out_dir: str, quiet: bool) -> None:
    """MiniLM sentiment classifier and a tiny LM, exported to every target that runs here, evaluated and timed.

    Example: edgekit demo -o demo-out
    """
    from edgekit.progress import Progress
    from edgekit_demo.demo import run_demo

    run_demo(out_dir, Progress(quiet=quiet))
