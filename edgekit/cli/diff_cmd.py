"""`edgekit diff`: thin layer over edgekit.layerdiff.diff."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from edgekit.cli import unsafe_load_option
from edgekit.layerdiff.report import METRICS


@click.command("diff")
@click.argument("artifact", type=click.Path())
@click.option("--data", required=True, help="Real inputs: .npz, CSV/JSONL text, or builtin:NAME:SPLIT.")
@click.option("--reference", help="The SOURCE it came from (default: the sidecar's), or a second exported FILE.")
@click.option("--weights", type=click.Path(), help="Weights for a package.module:factory reference.")
@click.option("--input", "inputs", multiple=True, metavar="NAME:DTYPE:SHAPE", help="Input spec for the reference.")
@click.option("--samples", type=click.IntRange(min=1), default=32, show_default=True, help="Samples of DATA to run.")
@click.option("--layers", default="all", show_default=True, help="Only the reference layers matching NAME or GLOB.")
@click.option("--metric", type=click.Choice(METRICS), default="snr", show_default=True,
              help="What a layer must keep: snr (dB, default 20), cosine (default 0.99) or max-abs "
              "(--atol/--rtol).")  # fmt: skip
@click.option("--threshold", type=float, help="The snr or cosine a layer's output must reach.")
@click.option("--atol", type=float, default=1e-3, show_default=True, help="max-abs: absolute tolerance.")
@click.option("--rtol", type=float, default=1e-3, show_default=True, help="max-abs: tolerance relative to |reference|.")
@click.option("--tokenizer", type=click.Path(), help="Tokenizer folder for text data (default: from the sidecar).")
@click.option("--reduce", "reduce_to", type=click.Path(file_okay=False), help="ONNX-based files: write the "
              "smallest piece that still diverges to this folder (reduced.onnx, its inputs, the expected outputs, "
              "a note).")  # fmt: skip
@click.option("--json", "json_path", type=click.Path(), help="Write the report as JSON here ('-': stdout).")
@click.option("--html", "html_path", type=click.Path(dir_okay=False), help="Write the report as an HTML page here.")
@click.option("--quiet", "-q", is_flag=True)
@unsafe_load_option
def diff_cmd(
    artifact, data, reference, weights, inputs, samples, layers, metric, threshold, atol, rtol, tokenizer, reduce_to,
    json_path, html_path, quiet,
) -> None:  # fmt: skip
    """Compare every weighted layer of ARTIFACT, run in its own runtime, with its source's on DATA; name the
    first layer past the tolerance (exit 1) or exit 0 when none is.

    Example: edgekit diff out/cnn-onnx-int8.onnx --data test.npz --reference pkg.zoo:cnn --weights cnn.pt
    """
    from edgekit.artifact import check_json_path, write_json_output
    from edgekit.layerdiff import diff
    from edgekit.progress import Progress

    if json_path:
        check_json_path(json_path)
    report = diff(
        artifact,
        data,
        reference=reference,
        samples=samples,
        layers=layers,
        metric=metric,
        threshold=threshold,
        atol=atol,
        rtol=rtol,
        reference_inputs=inputs,
        reference_weights=weights,
        tokenizer=tokenizer,
        reduce=reduce_to,
        progress=Progress(quiet=quiet),
    )
    _print(report, stderr=json_path == "-", reduced_asked=reduce_to is not None)
    if json_path:
        write_json_output(json_path, report.to_json())
    if html_path:
        from edgekit.artifact import write_text_atomic
        from edgekit.layerdiff.html import render

        write_text_atomic(Path(html_path), render(report))
    first = report.first_divergent
    if first is not None:
        click.secho(f"first divergent layer: {first.layer} ({_figure(first, report.metric)})", err=True, fg="red")
        sys.exit(1)


def _figure(row, metric: str) -> str:
    m = row.metrics
    if metric == "snr":
        median = m.get("median_channel_snr_db")
        whole = "exact" if m["snr_db"] is None else f"SNR {m['snr_db']:.1f} dB"
        return whole + ("" if median is None else f", median channel {median:.1f} dB")
    if metric == "cosine":
        return f"cosine {m['cosine']:.5f}"
    return f"max |diff| {m['max_abs']:.3g}, {m['over_tolerance']} values past the tolerance"


def _db(value) -> str:
    return "" if value is None else f"{value:.1f}"


def _print(report, stderr: bool = False, reduced_asked: bool = False) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{report.artifact} ({report.runtime}) vs {report.reference} on {report.samples} samples")
    for col in ("layer", "kind", "quantization", "SNR dB", "median ch.", "cosine", "max |diff|", "added error", ""):
        table.add_column(col, justify="left" if col in ("layer", "kind", "quantization") else "right")
    first = report.first_divergent
    for row in report.layers:
        if not row.compared:
            table.add_row(row.layer, row.kind, "", "", "", "", "", "", f"not compared: {row.unmatched}")
            continue
        m = row.metrics
        mark = "FIRST DIVERGENT" if row is first else ("ok" if row.passed else "past tolerance")
        table.add_row(
            row.layer,
            row.kind,
            row.quantization or "",
            "exact" if m["snr_db"] is None else f"{m['snr_db']:.1f}",
            _db(m.get("median_channel_snr_db")),
            f"{m['cosine']:.5f}",
            f"{m['max_abs']:.3g}",
            "" if row.added_error is None else f"{row.added_error:.2e}",
            mark,
            style="red" if row is first else None,
        )
    console = Console(stderr=stderr)
    console.print(table)
    compared = sum(r.compared for r in report.layers)
    console.print(f"{compared} of {len(report.layers)} weighted layers compared ({report.coverage:.0%})")
    if report.unmatched_artifact_layers:
        names = report.unmatched_artifact_layers
        more = " ..." if len(names) > 8 else ""
        console.print(f"artifact layers with no reference layer: {', '.join(names[:8])}{more}")
    for note in report.notes:
        console.print(f"note: {note}")
    if report.reduced is None and report.first_divergent is None and reduced_asked:
        console.print("nothing diverges: --reduce wrote nothing")
    if report.reduced:
        r = report.reduced
        console.print(f"reduced to {r['node_count']} nodes ({' → '.join(r['nodes'])}): {r['folder']}/reduced.onnx")
