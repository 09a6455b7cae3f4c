"""`edgekit bundle` and `edgekit verify`: app asset bundles with a checksummed manifest, and their check."""

from __future__ import annotations

import sys

import click


@click.command("bundle")
@click.argument("artifacts", nargs=-1, required=True, type=click.Path())
@click.option("--platform", type=click.Choice(["android", "ios", "generic"]), default="generic", show_default=True,
              help="android: a folder for app/src/main/assets/; ios: a .bundle folder for the app target.")  # fmt: skip
@click.option("--labels", type=click.Path(), help="Class labels file, shipped as labels.txt.")
@click.option("--name", help="Bundle name (default: the first model's name).")
@click.option("--version", "version", default="0.0.0", show_default=True, help="Bundle version.")
@click.option("--results", multiple=True, type=click.Path(), help="evaluate/benchmark --json files; repeatable.")
@click.option("--output", "-o", "out", required=True, type=click.Path(), help="Output folder, or FILE.zip.")
def bundle_cmd(artifacts, platform, labels, name, version, results, out) -> None:
    """Lay out exported files as app assets with manifest.json (checksums, tensors, preprocessing, results).

    Example: edgekit bundle out/model-tflite-int8.tflite --platform android --labels labels.txt -o release/
    """
    from edgekit.release.bundle import bundle

    result = bundle(list(artifacts), out, platform=platform, labels=labels, name=name, version=version,
                    results=list(results))  # fmt: skip
    manifest = result.manifest
    size = sum(f.size_bytes for f in manifest.files)
    click.echo(f"{result.path} ({len(manifest.models)} model(s), {len(manifest.files)} files, {size / 1e6:.2f} MB)")
    click.echo(f"{platform}: {result.where}")


@click.command("verify")
@click.argument("bundle_path", type=click.Path())
def verify_cmd(bundle_path) -> None:
    """Check a bundle (folder or .zip) against its manifest: schema, sizes, sha256, nothing extra.

    Example: edgekit verify release/model
    """
    from edgekit.release.verify import verify

    manifest, problems = verify(bundle_path)
    for problem in problems:
        click.secho(f"mismatch: {problem}", err=True, fg="red")
    if problems:
        sys.exit(1)
    assert manifest is not None
    click.echo(f"{bundle_path}: {manifest.name} {manifest.version}, {len(manifest.files)} files verified")
