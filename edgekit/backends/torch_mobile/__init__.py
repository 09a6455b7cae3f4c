"""PyTorch Mobile: .ptl files for the lite interpreter; int8 quantizes the module before scripting."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from edgekit.backends.base import Backend, Converter, StepContext, StepNotes
from edgekit.backends.options import BackendOptions
from edgekit.backends.torch_mobile.plan import scheme_problems, torch_lite_plan
from edgekit.channel_groups import OPTION_HELP
from edgekit.sidecar import ArtifactIO
from edgekit.sources.torch_source import torch_io


class TorchLiteOptions(BackendOptions):
    allow_dynamic: bool = Field(
        False,
        description="accept dynamic int8 (Linear layers only, float activations) when static int8 with --calib "
        "is not possible; without it that is an error",
    )
    channel_groups: bool = Field(
        True,
        description=OPTION_HELP,
    )


def _from_torch(ctx: StepContext) -> StepNotes:
    from edgekit.backends.torch_mobile.convert import convert

    return convert(ctx)


def _runner(path: Path, io: ArtifactIO | None, threads: int | None = None):
    from edgekit.backends.torch_mobile.runner import LiteInterpreterRunner

    assert io is not None  # open_runner refuses a .ptl without its I/O description (needs_sidecar_io)
    return LiteInterpreterRunner(path, io, threads)


def _layer_taps(path: Path, io: ArtifactIO | None):
    from edgekit.backends.torch_mobile.taps import TorchMobileTaps

    return TorchMobileTaps(path, io)


BACKEND = Backend(
    runtime="torch-lite",
    app_platforms=("android", "ios"),
    format="ptl",
    suffixes=(".ptl",),
    runner=_runner,
    describe_io=torch_io,
    worker_loader=Path(__file__).with_name("worker_loader.py"),
    runtime_modules=("torch",),
    converters=(
        Converter(
            "torch",
            "ptl",
            _from_torch,
            "torch.jit (lite interpreter)",
            needs=("torch",),
            quantizes=("int8-auto",),
            keeps_float=("int8-auto",),
        ),
    ),
    extra="torch",
    plan=torch_lite_plan,
    options=TorchLiteOptions,
    scheme_problems=scheme_problems,
    needs_sidecar_io=True,
    layer_taps=_layer_taps,
)
