"""`edgekit export`: thin layer over edgekit.export."""

from __future__ import annotations

import click

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
    "--calib-limit", default=CALIB_LIMIT, show_default=True, help="Use at most this many calibration samples."
)
@click.option(
    "--allow-float-fallback",
    is_flag=True,
    help="Integer targets (tflite-int8): keep ops without integer kernels in float, listed in the sidecar.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress output.")
def export_cmd(
    source, target, out_dir, calib, device, inputs, weights, tokenizer, calib_limit, allow_float_fallback, quiet
) -> None:
    """Export SOURCE to a target runtime file, then check parity against SOURCE."""
    from edgekit.exporter import export
    from edgekit.progress import Progress
    from edgekit.spec import parse_input_specs

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
        progress=progress,
    )
    for out in result.parity.outputs:
        top1 = f", top-1 agreement {out.top1:.3f}" if out.top1 is not None else ""
        progress.info(
            f"parity {out.name}: max abs {out.max_abs:.3g}, mean abs {out.mean_abs:.3g}, cosine {out.cosine:.5f}{top1}"
        )
    fallback = result.sidecar["route"][-1].get("float_fallback_ops")
    if fallback:
        progress.warn(f"{len(fallback)} op(s) run in float: {', '.join(sorted({o['op'] for o in fallback}))}")
    size = result.sidecar["size_bytes"]
    scheme = result.sidecar["quantization"].get("scheme_name") or result.sidecar["precision"]
    click.echo(f"{result.artifact} ({size / 1e6:.2f} MB, {scheme}, parity passed)")
