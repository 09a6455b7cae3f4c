"""`edgekit search --space SPACE.yaml`: a file that narrows or widens the search space, validated with the
line of each problem.

    targets: [onnx-int8, tflite-int8]   # only these (default: every target that runs for the device)
    options:                            # per runtime: the values to try for any of its options
      onnxruntime:
        fuse: [false]
    calibration_samples: [64, 256]      # calibration sizes for the targets that calibrate (default: 256)
    keep_sensitive: [0, 2]              # the most sensitive layers kept float from the start (int8 targets)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, PositiveInt, ValidationError

from edgekit.errors import UsageError, validation_message
from edgekit.yamlfile import line_of, node_at, read_yaml, validate


class SearchSpace(BaseModel):
    model_config = ConfigDict(extra="forbid")

    targets: list[str] = Field(default_factory=list)
    options: dict[str, dict[str, list[Any]]] = Field(default_factory=dict)
    calibration_samples: list[PositiveInt] = Field(default_factory=list)
    keep_sensitive: list[NonNegativeInt] = Field(default_factory=list)


def read_space(path: str | Path) -> SearchSpace:
    """The space file, its targets known and each option a runtime's own with values it accepts."""
    from edgekit.backends.registry import backend_for_runtime
    from edgekit.catalog import get_target

    path = Path(path)
    data, root = read_yaml(path, "search space")
    space = validate(SearchSpace, data if data is not None else {}, path, root)
    for k, name in enumerate(space.targets):
        try:
            get_target(name)
        except UsageError as e:
            raise UsageError(f"{path}, line {line_of(root, ['targets', str(k)])}: {e.message}", hint=e.hint) from None
    for runtime, options in space.options.items():
        backend = backend_for_runtime(runtime)

        def where(*loc: str, runtime: str = runtime) -> int:
            return line_of(root, ["options", runtime, *loc])

        if backend is None:
            keys = [key for key, _ in getattr(node_at(root, ["options"]), "value", []) if key.value == runtime]
            line = keys[0].start_mark.line + 1 if keys else where()
            from edgekit.backends.registry import backends

            raise UsageError(
                f"{path}, line {line}: no runtime named '{runtime}'.", hint=f"Runtimes: {', '.join(backends())}."
            )
        known = backend.options.model_fields
        for name, values in options.items():
            if name not in known:
                raise UsageError(
                    f"{path}, line {where(name)}: {runtime} has no option '{name}'.",
                    hint=f"Its options: {', '.join(known) or 'none'}.",
                )
            if not values:
                raise UsageError(f"{path}, line {where(name)}: {runtime}.{name} lists no value to try.")
            for value in values:
                try:
                    backend.options.model_validate({name: value})
                except ValidationError as e:
                    reason = validation_message(e.errors()[0])
                    raise UsageError(f"{path}, line {where(name)}: {runtime}.{name} = {value!r}: {reason}.") from None
    return space
