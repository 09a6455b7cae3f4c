"""`edgekit search`: thin layer over edgekit.release.search."""

from __future__ import annotations

import click

from edgekit.release.executor import EXECUTORS
from edgekit.release.search import STRATEGIES


@click.command("search")
@click.argument("source")
@click.option("--device", "devices", multiple=True, help="Device profile to choose a file for; repeat for more "
              "(default: the one detected for this machine).")  # fmt: skip
@click.option("--data", required=True, help="Labelled task DATA: each file is evaluated in its runtime on it.")
@click.option("--calib", help="Calibration and parity data for the exports (int8 targets need it).")
@click.option("--max-drop", type=float, default=1.0, show_default=True, help="Most accuracy points a file may lose.")
@click.option("--max-p90-ms", type=float, help="Slowest p90 latency a file may have on --bench.")
@click.option("--max-size-mb", type=float, help="Largest a file may be.")
@click.option("--max-memory-mb", type=float, help="Most peak memory (resident set) the process running a file "
              "may reach on --bench.")  # fmt: skip
@click.option("--target", "targets", multiple=True, help="Search only these targets; repeat (default: all that run).")
@click.option("--strategy", type=click.Choice(STRATEGIES), default="grid", show_default=True,
              help="grid: every trial in order; random: a random sample (with --trials); tpe: Optuna's TPE "
              "proposes each round from the trials before it, for the lowest p50; nsga2: Optuna's NSGA-II, for "
              "the front of accuracy drop, p50 and size (both: pip install 'edgekit[search]').")  # fmt: skip
@click.option("--trials", type=click.IntRange(min=1), help="Run at most this many trials per device profile.")
@click.option("--time", "time_budget", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
              help="Start no round of trials after this long (the round running then finishes; device profiles "
              "share the time).")  # fmt: skip
@click.option("--space", "space_file", type=click.Path(dir_okay=False), help="SPACE.yaml: the targets to try "
              "and the values per runtime option (e.g. options: {onnxruntime: {fuse: [false]}}).")  # fmt: skip
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random, tpe and nsga2 strategies.")
@click.option(
    "--bench", default="local", show_default=True, help="Benchmark device: local, ssh://USER@HOST, adb://SERIAL."
)
@click.option("--input", "inputs", multiple=True, metavar="NAME:DTYPE:SHAPE", help="Input spec; repeat per input.")
@click.option("--weights", type=click.Path(), help="State dict or .safetensors for a package.module:factory SOURCE.")
@click.option("--tokenizer", type=click.Path(), help="Tokenizer folder for text data (default: the model's own).")
@click.option("--executor", type=click.Choice(EXECUTORS), default="local", show_default=True,
              help="Where trials' steps run (as in `edgekit run`).")  # fmt: skip
@click.option("--jobs", "-j", type=int, default=None, help="Steps at once (default: the cores).")
@click.option("--bundle", type=click.Path(file_okay=False), help="Also make each device's choice an app bundle "
              "in BUNDLE/DEVICE, for the profile's platform (android, ios, else generic).")  # fmt: skip
@click.option("--labels", type=click.Path(dir_okay=False), help="With --bundle: the labels file each bundle carries.")
@click.option("--output", "-o", "out", required=True, type=click.Path(file_okay=False),
              help="Folder for search.json, the step cache and each device's chosen file.")  # fmt: skip
@click.option("--quiet", "-q", is_flag=True)
def search_cmd(source, devices, data, calib, max_drop, max_p90_ms, max_size_mb, max_memory_mb, targets, strategy,
               trials, time_budget, space_file, seed, bench, inputs, weights, tokenizer, executor, jobs, bundle, labels,
               out, quiet) -> None:  # fmt: skip
    """Find the best file of SOURCE for each device profile: every target that runs there (and its runtime's
    searchable options) is exported, evaluated on --data in its runtime and benchmarked; the fastest file
    within the budgets is chosen. Re-running reuses every finished step (OUT/cache).

    Example: edgekit search model.onnx --data test.npz --calib calib.npz --max-drop 1 -o search/
    """
    from edgekit.catalog import local_device
    from edgekit.progress import Progress
    from edgekit.release.search import Budgets, NoChoice, search

    if labels and not bundle:
        raise click.UsageError("--labels goes into the bundles: use it with --bundle DIR.")

    budgets = Budgets(max_drop, max_p90_ms, max_size_mb, max_memory_mb)
    try:
        result = search(
            source, list(devices) or [local_device().name], data, out, budgets,
            calib=calib, inputs=inputs, weights=weights, tokenizer=tokenizer, targets=targets, strategy=strategy,
            trials=trials, time_budget=time_budget, space_file=space_file, seed=seed, bench=bench,
            executor=executor, jobs=jobs, bundle=bundle, labels=labels,
            progress=Progress(quiet=quiet),
        )  # fmt: skip
    except NoChoice as e:
        if not quiet:
            print_trials(e.result)
        raise
    if not quiet:
        print_trials(result)
    print_choices(result)
    click.echo(f"report: {out}/report.html")


def print_choices(result: dict) -> None:
    """Each device profile's chosen file (and its bundle, when one was made)."""
    for device, choice in result["choices"].items():
        bundle = f", bundle {choice['bundle']}" if choice.get("bundle") else ""
        click.echo(f"{device}: {choice['file']} ({choice['trial']}){bundle}")


def print_trials(result: dict) -> None:
    """One row per trial: its figures, whether it is on its device's front, and what it missed."""
    from rich.console import Console
    from rich.table import Table

    front = {name for names in result["front"].values() for name in names}
    chosen = {c["trial"] for c in result["choices"].values()}
    table = Table("trial", "size", "drop", "p50 ms", "p90 ms", "peak MB", "front", "result")
    for row in result["trials"]:
        if row["status"] == "failed":
            table.add_row(row["name"], "", "", "", "", "", "", f"failed: {row['error'][:80]}")
            continue
        drop = row["accuracy_drop_pts"]
        table.add_row(
            row["name"],
            f"{row['size_bytes'] / 1e6:.3f} MB",
            "-" if drop is None else f"{drop:+.2f} pt",
            "-" if row["p50_ms"] is None else f"{row['p50_ms']:.3f}",
            "-" if row["p90_ms"] is None else f"{row['p90_ms']:.3f}",
            "-" if row.get("peak_rss_mb") is None else f"{row['peak_rss_mb']:.0f}",
            "yes" if row["name"] in front else "",
            "chosen"
            if row["name"] in chosen
            else f"the file of {row['same_file_as']}"
            if "same_file_as" in row
            else "; ".join(row["over_budget"]) or "within budgets",
        )
    console = Console(stderr=True)
    console.print(table)
    if result.get("stopped"):
        console.print(f"{result['stopped']} (of {result['space_size']} in the space)")
