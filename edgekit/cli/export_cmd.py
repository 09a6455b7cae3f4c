"""`edgekit export`: thin layer over edgekit.export."""

from __future__ import annotations

import click

from edgekit.cli import unsafe_load_option
from edgekit.cli.backend_flags import backend_option_flags, given_backend_options
from edgekit.cli.device_flags import ssh_flags, transport_options
from edgekit.data import CALIB_LIMIT


@click.command("export")
@click.argument("source")
@click.option("--target", "-t", required=True, help="Target name (see `edgekit targets`), e.g. onnx-int8.")
@click.option("--output", "-o", "out_dir", required=True, type=click.Path(), help="Output folder (created if missing).")
@click.option("--calib", type=click.Path(), help="Calibration/parity data: .npz named after inputs, or CSV/JSONL text.")
@click.option("--device", help="Device profile (targets/devices); default: detected for this machine.")
@click.option(
    "--input",
    "inputs",
    multiple=True,
    metavar="NAME:DTYPE:SHAPE",
    help="Input spec, dims joined by 'x' (image:float32:batchx1x8x8); repeat per input.",
)
@click.option("--weights", type=click.Path(), help="State dict or .safetensors for a package.module:factory SOURCE.")
@click.option("--tokenizer", type=click.Path(), help="Tokenizer folder for text data (default: the model's own).")
@click.option(
    "--calib-limit",
    default=CALIB_LIMIT,
    type=click.IntRange(min=1),
    show_default=True,
    help="Use at most this many calibration samples.",
)
@click.option(
    "--allow-float-fallback",
    is_flag=True,
    help="Integer targets (tflite-int8): keep ops without integer kernels in float, listed in the sidecar.",
)
@click.option(
    "--keep-float",
    multiple=True,
    metavar="NAME_OR_GLOB",
    help="Leave this layer (module path, Keras layer or ONNX node name; globs work) in float; repeat for more. "
    "'(non-linear ops)' and '(embedding lookups)' (TFLite) and '(non-layer ops)' (ONNX Runtime, OpenVINO) name the "
    "ops that are not layers.",
)
@click.option(
    "--keep-sensitive",
    type=click.IntRange(min=0),
    default=0,
    metavar="N",
    help="Measure each layer's int8 sensitivity first and keep the N most sensitive float from the first attempt "
    "(the fallback's order; TFLite's first is '(non-linear ops)').",
)
@click.option(
    "--no-fallback",
    is_flag=True,
    help="Fail when the int8 file misses its gate, instead of keeping its most sensitive layers float.",
)
@click.option(
    "--run-on",
    default="local",
    show_default=True,
    help="Where the gate runs the file (parity, --eval): here, or ssh://user@host[:port] with edgekit's worker "
    "in the device's runtime (a Core ML package's parity on a Mac, from Linux).",
)
@ssh_flags("run-on")
@click.option("--report-sensitivity", is_flag=True, help="Measure and print the per-layer quantization sensitivity.")
@click.option("--eval", "eval_data", help="Task DATA (labelled) for an accuracy gate on the exported file.")
@click.option("--max-drop", type=float, help="With --eval: most accuracy/macro-F1 points the file may lose.")
@backend_option_flags()
@click.option(
    "--json", "json_path", type=click.Path(), help="Write the artifact's paths and sidecar as JSON ('-': stdout)."
)
@click.option("--quiet", "-q", is_flag=True, help="No progress output.")
@unsafe_load_option
def export_cmd(
    source,
    target,
    out_dir,
    calib,
    device,
    inputs,
    weights,
    tokenizer,
    calib_limit,
    allow_float_fallback,
    keep_float,
    keep_sensitive,
    no_fallback,
    run_on,
    run_on_python,
    run_on_identity,
    run_on_ssh_options,
    report_sensitivity,
    eval_data,
    max_drop,
    json_path,
    quiet,
    **backend_flags,
) -> None:
    """Export SOURCE to a target runtime file, then check parity against SOURCE.

    The flags named for some runtimes' targets are those backends' own options; the others refuse them.

    Example: edgekit export model.onnx --target onnx-int8 --calib calib.npz -o out/
    """
    from edgekit.errors import UsageError
    from edgekit.exporter import export
    from edgekit.fallback import FallbackOptions
    from edgekit.progress import Progress
    from edgekit.spec import parse_input_specs

    if (eval_data is None) != (max_drop is None):
        raise UsageError("--eval DATA and --max-drop PTS go together: the gate is the drop on that data.")
    if json_path:
        from edgekit.artifact import check_json_path

        check_json_path(json_path)
    progress = Progress(quiet=quiet)
    result = export(
        source,
        target,
        out_dir,
        calib=calib,
        device=device,
        inputs=parse_input_specs(inputs),
        weights=weights,
        tokenizer=tokenizer,
        calib_limit=calib_limit,
        allow_float_fallback=allow_float_fallback,
        fallback=FallbackOptions(
            enabled=not no_fallback,
            keep_float=tuple(keep_float),
            keep_sensitive=keep_sensitive,
            report_sensitivity=report_sensitivity,
            eval_data=eval_data,
            max_drop=max_drop,
            run_on=run_on,
            run_on_options=transport_options(run_on, 600.0, run_on_python, run_on_identity, run_on_ssh_options),
        ),
        options=given_backend_options(backend_flags),
        progress=progress,
    )
    _report(result, progress, report_sensitivity)
    size = result.size_bytes
    scheme = result.sidecar["quantization"].get("scheme_name") or result.sidecar["precision"]
    to_stderr = json_path == "-"
    checked = "parity not measured here" if result.parity.not_measured else "parity passed"
    click.echo(f"{result.artifact} ({size / 1e6:.2f} MB, {scheme}, {checked})", err=to_stderr)
    if result.engine:
        click.echo(f"{result.engine} (TensorRT engine)", err=to_stderr)
    if json_path:
        from edgekit.artifact import write_json_output
        from edgekit.dispatch import artifact_files

        files = [str(f) for f in artifact_files(result.artifact)]
        write_json_output(json_path, {"schema_version": "1", "artifact": str(result.artifact), "files": files,
                                      "engine": str(result.engine) if result.engine else None,
                                      "warnings": result.warnings, "sidecar": result.sidecar})  # fmt: skip


def _report(result, progress, report_sensitivity: bool) -> None:
    """What the export did, before its last line: parity per output, float ops and layers, the accuracy gate."""
    for out in result.parity.outputs:
        top1 = f", top-1 agreement {out.top1:.3f}" if out.top1 is not None else ""
        progress.info(
            f"parity {out.name}: max abs {out.max_abs:.3g}, mean abs {out.mean_abs:.3g}, cosine {out.cosine:.5f}{top1}"
        )
    route = result.sidecar["route"]  # empty when the source already is the target's format (ONNX to onnx-fp32)
    fallback = route[-1].get("float_fallback_ops") if route else None
    if fallback:
        progress.warn(f"{len(fallback)} op(s) run in float: {', '.join(sorted({o['op'] for o in fallback}))}")
    record = result.sidecar["quantization"].get("fallback") or {}
    if report_sensitivity and record.get("sensitivity"):
        from rich.console import Console

        console = Console()
        if not console.is_terminal:  # piped: no terminal width to fit, and the names must stay whole
            console.width = max(100, 60 + max(len(r["layer"]) for r in record["sensitivity"]))
        console.print(sensitivity_table(record["sensitivity"], {f["layer"] for f in record["float_layers"]}))
    if record.get("float_layers"):
        kept = [f["layer"] for f in record["float_layers"]]
        progress.info(f"kept float ({len(kept)}): {', '.join(kept[:6])}{' ...' if len(kept) > 6 else ''}")
    gate = result.sidecar.get("evaluation")
    if gate:
        drops = ", ".join(f"{k} drop {v:.2f} pts" for k, v in gate["drop"].items() if k in ("accuracy", "f1_macro"))
        progress.info(f"accuracy gate on {gate['data']}: {drops} (max {gate['max_drop']})")


def sensitivity_table(rows: list[dict], kept: set[str]):
    """The per-layer sensitivity as a rich table, most sensitive first, the layers kept float marked."""
    from rich.table import Table

    table = Table(title="per-layer quantization sensitivity (output error with only that layer int8)")
    for col in ("layer", "kind", "rel. error", "outlier ratio", "kept float"):
        table.add_column(col, justify="left" if col in ("layer", "kind") else "right", no_wrap=col == "layer")
    for r in rows:
        table.add_row(
            r["layer"], r["kind"], f"{r['error']:.2e}", f"{r['outlier_ratio']:.1f}", "yes" if r["layer"] in kept else ""
        )
    return table
