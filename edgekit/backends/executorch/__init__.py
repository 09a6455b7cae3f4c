"""ExecuTorch: .pte programs lowered to XNNPACK; int8 through PT2E before lowering."""

from __future__ import annotations

from pathlib import Path

from edgekit.backends.base import Backend, Converter, NativeTool, StepContext, StepNotes
from edgekit.backends.executorch import native
from edgekit.backends.executorch.plan import executorch_plan, scheme_problems
from edgekit.sidecar import ArtifactIO
from edgekit.sources.torch_source import torch_io


def _from_torch(ctx: StepContext) -> StepNotes:
    from edgekit.backends.executorch.convert import convert

    return convert(ctx)


def _runner(path: Path, io: ArtifactIO | None, threads: int | None = None):
    from edgekit.backends.executorch.runner import ExecuTorchRunner

    assert io is not None  # open_runner refuses a .pte without its I/O description (needs_sidecar_io)
    return ExecuTorchRunner(path, io, threads)


def _layer_taps(path: Path, io: ArtifactIO | None):
    from edgekit.backends.executorch.taps import ExecuTorchTaps

    return ExecuTorchTaps(path, io)


def _load_hint(message: str) -> str | None:
    from edgekit.backends.executorch.runner import load_hint

    return load_hint(message)


BACKEND = Backend(
    runtime="executorch",
    app_platforms=("android", "ios"),
    versioned=("executorch", "torchao"),
    format="pte",
    suffixes=(".pte",),
    runner=_runner,
    describe_io=torch_io,
    worker_loader=Path(__file__).with_name("worker_loader.py"),
    runtime_modules=("executorch",),
    converters=(
        Converter(
            "torch",
            "pte",
            _from_torch,
            "torch.export + ExecuTorch (XNNPACK)",
            needs=("torch", "executorch", "torchao"),
            quantizes=("static",),
            keeps_float=("static",),
            static_shapes=True,
        ),
    ),
    native_tool=NativeTool("executor_runner", native.command, native.parse_executor_runner),
    load_hint=_load_hint,
    plan=executorch_plan,
    scheme_problems=scheme_problems,
    needs_sidecar_io=True,
    layer_taps=_layer_taps,
)
