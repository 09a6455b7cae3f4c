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
@click.option(
    "--jobs", "-j", type=int, default=None, help="Worker processes side by side (default: the cores; 1: in this one)."
)
@click.option(
    "--targets",
    "only",
    default=None,
    metavar="LIST",
    help="Only these of the classifier's targets (comma-separated), and neither the distillation nor the LM.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress output.")
def demo_cmd(out_dir: str, jobs: int | None, only: str | None, quiet: bool) -> None:
    """MiniLM sentiment classifier and a tiny LM, exported to every target that runs here, evaluated and timed.

    The exports and evaluations run side by side on the local executor (as `edgekit run` does); the
    timing runs at the end, alone. The first run also trains the demo's models (cached).

    Example: edgekit demo -o demo-out --jobs 2
    """
    from edgekit.progress import Progress
    from edgekit_demo.demo import PARTS, run_demo

    names = tuple(t.strip() for t in only.split(",") if t.strip()) if only else ()
    run_demo(out_dir, Progress(quiet=quiet), jobs, names, ("classifier",) if names else PARTS)
