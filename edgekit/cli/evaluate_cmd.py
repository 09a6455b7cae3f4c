"""`edgekit evaluate`: thin layer over edgekit.evaluation.evaluate."""

from __future__ import annotations

import sys

import click

from edgekit.cli import unsafe_load_option
from edgekit.cli.device_flags import ssh_flags, timeout_flag, transport_options


@click.command("evaluate")
@click.argument("artifact", type=click.Path())
@click.option(
    "--data", required=True, help="DATA: .npz, CSV/JSONL text, or builtin:NAME:SPLIT (see `edgekit datasets`)."
)
@click.option("--metric", "metric", default=None, help="Comma-separated: accuracy,f1 (default) or perplexity.")
@click.option("--reference", help="The SOURCE model, to compute the same metrics and the drop.")
@click.option(
    "--input", "inputs", multiple=True, metavar="NAME:DTYPE:SHAPE", help="Input spec for a reference that needs one."
)
@click.option("--weights", type=click.Path(), help="Weights for a package.module:factory reference.")
@click.option(
    "--max-drop",
    type=float,
    help="Gate: fail (exit 1) if accuracy or macro-F1 drop more points than this (perplexity: more percent increase).",
)
@click.option("--tokenizer", type=click.Path(), help="Tokenizer folder for text data (default: from the sidecar).")
@click.option("--limit", type=click.IntRange(min=1), help="Evaluate the first N samples only.")
@click.option(
    "--device",
    default="local",
    show_default=True,
    help="Where ARTIFACT runs: here, or ssh://user@host[:port] (edgekit's worker runs it in the device's own "
    "runtime; a Core ML package on a Mac). The reference SOURCE always runs here.",
)
@ssh_flags()
@timeout_flag
@click.option("--json", "json_path", type=click.Path(), help="Write the report as JSON here ('-': stdout).")
@click.option("--quiet", "-q", is_flag=True)
@unsafe_load_option
def evaluate_cmd(
    artifact, data, metric, reference, inputs, weights, max_drop, tokenizer, limit, device, python, identity,
    ssh_options, timeout, json_path, quiet,
) -> None:  # fmt: skip
    """Run ARTIFACT in its own runtime over DATA and report task metrics (and the drop vs --reference).

    Example: edgekit evaluate out/model-onnx-int8.onnx --data builtin:digits:test --reference model.onnx
    """
    from edgekit.artifact import check_json_path, write_json_output
    from edgekit.evaluation import evaluate, parse_metrics
    from edgekit.progress import Progress
    from edgekit.spec import parse_input_specs

    if json_path:
        check_json_path(json_path)  # before the evaluation runs, not after
    progress = Progress(quiet=quiet)
    report = evaluate(
        artifact,
        data,
        metrics=parse_metrics(metric),
        reference=reference,
        max_drop=max_drop,
        tokenizer=tokenizer,
        limit=limit,
        reference_inputs=parse_input_specs(inputs),
        reference_weights=weights,
        device=device,
        device_options=transport_options(device, timeout, python, identity, ssh_options),
        progress=progress,
    )
    _print(report, stderr=json_path == "-")
    for note in report.notes:
        click.secho(f"note: {note}", err=True, fg="yellow")
    if json_path:
        write_json_output(json_path, report.to_json())
    if not report.passed:
        for failure in report.failures:
            click.secho(f"gate failed: {failure}", err=True, fg="red")
        sys.exit(1)


def _print(report, stderr: bool = False) -> None:
    from rich.console import Console
    from rich.table import Table

    shown = ("accuracy", "f1_macro", "f1_micro", "f1_binary", "perplexity", "next_token_accuracy")
    keys = [k for k in shown if report.metrics.get(k) is not None]
    table = Table(title=f"{report.artifact} on {report.data}")
    table.add_column("metric")
    table.add_column("artifact", justify="right")
    if report.reference:
        table.add_column("reference", justify="right")
        table.add_column("drop", justify="right")
    for key in keys:
        row = [key, f"{report.metrics[key]:.4f}"]
        if report.reference:
            unit = "%" if key == "perplexity" else " pts"
            row += [f"{report.reference[key]:.4f}", f"{report.drop.get(key, 0):+.2f}{unit}"]
        table.add_row(*row)
    console = Console(stderr=stderr)
    console.print(table)
    if "per_class" in report.metrics:
        per = Table(title="per class (artifact)")
        for col in ("class", "precision", "recall", "f1", "support"):
            per.add_column(col, justify="right")
        for name, m in report.metrics["per_class"].items():
            per.add_row(name, f"{m['precision']:.3f}", f"{m['recall']:.3f}", f"{m['f1']:.3f}", str(m["support"]))
        console.print(per)
        matrix = Table(title="confusion matrix (rows: true class, columns: predicted)")
        names = list(report.metrics["per_class"])
        matrix.add_column("true \\ predicted")
        for name in names:
            matrix.add_column(name, justify="right")
        for name, counts in zip(names, report.metrics["confusion_matrix"]):
            matrix.add_row(name, *(str(c) for c in counts))
        console.print(matrix)
    if "perplexity" in report.metrics:
        m = report.metrics
        console.print(
            f"perplexity over {m['tokens']} tokens, context length {m['context_length']}, stride {m['stride']}"
        )
        if m.get("next_token_agreement") is not None:
            console.print(f"next-token top-1 agreement with the reference: {100 * m['next_token_agreement']:.2f}%")
