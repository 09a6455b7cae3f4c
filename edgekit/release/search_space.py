"""`edgekit search --space SPACE.yaml`: a file that narrows or widens the search space, validated with the
line of each problem.

    targets: [onnx-int8, tflite-int8]   # only these (default: every target that runs for the device)
    options:                            # per runtime: the values to try for any of its options
      onnxruntime:
        fuse: [false]
    calibration_samples: [64, 256]      # calibration sizes for the targets that calibrate (default: 256)
    keep_sensitive: [0, 2]              # the most sensitive layers kept float from the start (int8 targets)
    compression:                        # compressed sources to try besides the source itself (default: none)
      - {method: prune, data: train.npz, sparsity: [0.3, 0.5], epochs: 3}   # a list: each value in turn
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, PositiveInt, ValidationError

from edgekit.errors import UsageError, validation_message
from edgekit.release.pipeline import CompressSpec
from edgekit.yamlfile import line_of, node_at, read_yaml, validate


class SearchSpace(BaseModel):
    model_config = ConfigDict(extra="forbid")

    targets: list[str] = Field(default_factory=list)
    options: dict[str, dict[str, list[Any]]] = Field(default_factory=dict)
    calibration_samples: list[PositiveInt] = Field(default_factory=list)
    keep_sensitive: list[NonNegativeInt] = Field(default_factory=list)
    # each entry a pipeline's compress: settings (edgekit compress), a setting given as a list tried value by value
    compression: list[dict[str, Any]] = Field(default_factory=list)

    def compressions(self) -> list[dict[str, Any]]:
        """Every compression the entries spell out, one per combination of their listed values."""
        return [c for entry in self.compression for c in _expand(entry)]


def _expand(entry: dict[str, Any]) -> list[dict[str, Any]]:
    varied = {k: v for k, v in entry.items() if isinstance(v, list)}
    return [{**entry, **dict(zip(varied, values))} for values in itertools.product(*varied.values())]


def compression_label(compress: dict[str, Any] | None) -> str:
    """A compression's settings in a few words (`prune sparsity=0.5`), its data left out; `none` without one."""
    if not compress:
        return "none"
    shown = [f"{k}={v}" for k, v in compress.items() if k not in ("method", "data", "val")]
    return " ".join([str(compress.get("method")), *shown])


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
    for k, entry in enumerate(space.compression):
        for settings in _expand(entry):
            try:
                CompressSpec.model_validate(settings)
            except ValidationError as e:
                reason = validation_message(e.errors()[0])
                line = line_of(root, ["compression", str(k)])
                raise UsageError(f"{path}, line {line}: compression {compression_label(settings)}: {reason}.") from None
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
