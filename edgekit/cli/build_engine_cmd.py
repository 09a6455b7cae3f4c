"""`edgekit build-engine`: thin layer over edgekit.backends.tensorrt.engine.build_engine (stage 2)."""

from __future__ import annotations

import click

from edgekit.cli.backend_flags import backend_option_flags, given_backend_options


@click.command("build-engine")
@click.argument("onnx_file", type=click.Path())
@backend_option_flags(engine_only=True)
@click.option("--quiet", "-q", is_flag=True, help="No progress output.")
def build_engine_cmd(onnx_file, quiet, **backend_flags) -> None:
    """Build the TensorRT engine (.plan) of ONNX_FILE, a `edgekit export --target tensorrt-*` file.

    The engine, its sidecar, the build log, the per-layer precision report and the timing cache are written
    beside ONNX_FILE; the engine is named for the GPU it was built on (MODEL-sm87.plan).

    Example: edgekit build-engine out/model-tensorrt-int8.onnx --build-on ssh://nvidia@jetson.local
    """
    from edgekit.backends.registry import backend_for_runtime, resolve_options
    from edgekit.backends.tensorrt.engine import build_engine, engine_options
    from edgekit.backends.tensorrt.options import TensorRTOptions
    from edgekit.progress import Progress
    from edgekit.sidecar import read_sidecar

    backend = backend_for_runtime("tensorrt")
    assert backend is not None
    given = resolve_options(backend, given_backend_options(backend_flags), "the engine build")
    assert isinstance(given, TensorRTOptions)  # the TensorRT backend's options model
    options = engine_options(given)
    engine = build_engine(onnx_file, options, Progress(quiet=quiet))
    sidecar = read_sidecar(engine)
    facts = (sidecar.engine if sidecar else None) or {}
    counts = (facts.get("layer_precisions") or {}).get("counts", {})
    layers = ", ".join(f"{n} {p}" for p, n in sorted(counts.items(), key=lambda kv: -kv[1]))
    click.echo(
        f"{engine} (TensorRT {facts.get('tensorrt_version', '?')}, {facts.get('gpu', 'GPU ?')} "
        f"sm_{str(facts.get('compute_capability', '?')).replace('.', '')}; layers: {layers or 'no report'})"
    )
