"""Tensor specs: the signature of a model's inputs and outputs, and the `--input` syntax."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

import numpy as np

from edgekit.errors import UsageError

Dim = int | str  # an int is static; a string names a dynamic axis
# what an output holds: "scores" (one score per class: top-1 agreement applies) or "features"
Role = Literal["scores", "features"]

_DTYPES = {
    "float32",
    "float16",
    "float64",
    "int64",
    "int32",
    "int16",
    "int8",
    "uint8",
    "bool",
}


@dataclass(frozen=True)
class TensorSpec:
    """One named tensor: dtype, shape (ints static, strings dynamic) and quantization params."""

    name: str
    dtype: str
    shape: tuple[Dim, ...]
    scale: float | None = None
    zero_point: int | None = None
    role: Role | None = None  # outputs only; None: judged from the shape

    @property
    def dynamic_axes(self) -> dict[int, str]:
        return {i: d for i, d in enumerate(self.shape) if isinstance(d, str)}

    def concrete_shape(self, sizes: dict[str, int] | None = None, default: int = 1) -> tuple[int, ...]:
        """The shape with each dynamic axis replaced by `sizes[name]` or `default`."""
        sizes = sizes or {}
        return tuple(d if isinstance(d, int) else sizes.get(d, default) for d in self.shape)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["shape"] = list(self.shape)
        return {k: v for k, v in data.items() if v is not None}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TensorSpec:
        return cls(
            name=data["name"],
            dtype=data["dtype"],
            shape=tuple(data["shape"]),
            scale=data.get("scale"),
            zero_point=data.get("zero_point"),
            role=data.get("role"),
        )

    def __str__(self) -> str:
        return f"{self.name}:{self.dtype}:{'x'.join(str(d) for d in self.shape) or 'scalar'}"


@dataclass(frozen=True)
class Signature:
    """The inputs and outputs of a model, in order."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...] = field(default_factory=tuple)

    @property
    def input_names(self) -> list[str]:
        return [t.name for t in self.inputs]

    def to_json(self) -> dict[str, Any]:
        return {"inputs": [t.to_json() for t in self.inputs], "outputs": [t.to_json() for t in self.outputs]}

    def with_roles(self, source: Signature) -> Signature:
        """These outputs with the roles `source` declares for outputs of the same name."""
        roles = {o.name: o.role for o in source.outputs if o.role}
        outputs = tuple(replace(o, role=roles.get(o.name, o.role)) for o in self.outputs)
        return Signature(self.inputs, outputs)


_SPEC_RE = re.compile(r"^(?P<name>[^:]+):(?P<dtype>[a-z0-9]+):(?P<shape>[A-Za-z0-9_x]*)$")


def parse_input_spec(text: str) -> TensorSpec:
    """Parse `NAME:DTYPE:SHAPE`, dims separated by `x`; a non-numeric dim is dynamic.

    `image:float32:1x3x224x224`, `input_ids:int64:batchx128`.
    """
    match = _SPEC_RE.match(text.strip())
    if not match:
        raise UsageError(
            f"Cannot read the input spec '{text}'.",
            hint="Write NAME:DTYPE:SHAPE with dims separated by 'x', e.g. image:float32:1x3x224x224 "
            "or input_ids:int64:batchx128 (a non-numeric dim is dynamic).",
        )
    dtype = match["dtype"]
    if dtype not in _DTYPES:
        raise UsageError(
            f"Unknown dtype '{dtype}' in input spec '{text}'.", hint=f"Use one of: {', '.join(sorted(_DTYPES))}."
        )
    dims: list[Dim] = []
    for part in filter(None, match["shape"].split("x")):
        if part.isdigit():
            if int(part) == 0:
                raise UsageError(f"Dimension 0 in input spec '{text}': every static dim must be ≥ 1.")
            dims.append(int(part))
        else:
            dims.append(part)
    return TensorSpec(match["name"], dtype, tuple(dims))


InputSpecs = Sequence[TensorSpec | str] | TensorSpec | str
"""What the Python API takes as inputs=: one spec or several, each a TensorSpec or an `--input` string."""


def parse_input_specs(texts: InputSpecs) -> tuple[TensorSpec, ...]:
    """Input specs from `--input` strings (or TensorSpecs, kept as they are); names must not repeat. One spec
    may be given alone (inputs="image:float32:1x3x224x224"), not only in a list."""
    if isinstance(texts, (str, TensorSpec)):
        texts = (texts,)
    specs = tuple(t if isinstance(t, TensorSpec) else parse_input_spec(t) for t in texts)
    names = [s.name for s in specs]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise UsageError(f"Input spec names repeat: {', '.join(sorted(dupes))}.")
    return specs


def default_output_names(n: int) -> list[str]:
    """Names for outputs a model does not name: `output`, or `output_0`, `output_1`, ..."""
    return ["output"] if n == 1 else [f"output_{i}" for i in range(n)]


def np_dtype(dtype: str) -> np.dtype:
    return np.dtype("bool" if dtype == "bool" else dtype)
