"""TensorRT's own export settings: the optimization profiles (stage 1) and where the engine is built (stage 2)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from edgekit.backends.options import BackendOptions
from edgekit.backends.tensorrt.profiles import Profile, parse_profile

_ENGINE: dict[str, Any] = {"engine": True}  # also an option of `edgekit build-engine`


class TensorRTOptions(BackendOptions):
    profiles: tuple[Profile, ...] = Field(
        (),
        description="an input's shape range, shapes as AxB (input_ids:1x64,4x64,16x64); repeat per input; "
        "default derived from the model and the calibration data",
        json_schema_extra={"flag": "profile", "metavar": "NAME:MIN,OPT,MAX"},
    )
    build_on: str | None = Field(
        None,
        description="build the engine on this NVIDIA host with its trtexec (a Jetson, a GPU server); "
        "default: this machine, when it can",
        json_schema_extra={**_ENGINE, "metavar": "ssh://USER@HOST"},
    )
    workspace_mib: int = Field(1024, ge=1, description="the engine builder's workspace, MiB", json_schema_extra=_ENGINE)
    trtexec: str | None = Field(
        None,
        description="with --build-on: trtexec's path there (default: PATH, then JetPack's)",
        json_schema_extra=_ENGINE,
    )
    identity: str | None = Field(None, description="ssh private key for --build-on", json_schema_extra=_ENGINE)
    ssh_options: tuple[str, ...] = Field(
        (),
        description="an ssh -o option for --build-on (ConnectTimeout=5); repeat for more",
        json_schema_extra={**_ENGINE, "flag": "ssh-option", "metavar": "KEY=VALUE"},
    )

    @field_validator("profiles", mode="before")
    @classmethod
    def _parse_profiles(cls, value: Any) -> Any:
        """Profiles as written on the command line or in a pipeline (NAME:MIN,OPT,MAX) or as Profile objects."""
        if isinstance(value, str):
            value = [value]
        return tuple(parse_profile(v) if isinstance(v, str) else v for v in value or ())

    def engine_host(self) -> str | None:
        return self.build_on
