"""TensorRT optimization profiles: the min/opt/max shape of every input, given or derived from the model.

An engine accepts any shape inside its profile and is tuned for `opt`. Derived profiles: a free batch
dim spans 1..MAX_BATCH (tuned for 1, the edge case); other free dims take the calibration data's size
(or the synthetic-input rule's 64) for all three, since tokenized data is padded to one length.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgekit.data import Dataset
from edgekit.errors import UsageError
from edgekit.spec import TensorSpec

MAX_BATCH = 16
FREE_DIM = 64  # edgekit's synthetic-input size for a free non-batch dim (edgekit.synthetic)

Shape = tuple[int, ...]


@dataclass(frozen=True)
class Profile:
    """One input's shape range."""

    name: str
    min: Shape
    opt: Shape
    max: Shape

    def to_json(self) -> dict[str, list[int]]:
        return {"min": list(self.min), "opt": list(self.opt), "max": list(self.max)}

    @classmethod
    def from_json(cls, name: str, data: dict[str, list[int]]) -> Profile:
        return cls(name, tuple(data["min"]), tuple(data["opt"]), tuple(data["max"]))


def _shape(text: str, where: str) -> Shape:
    try:
        dims = tuple(int(d) for d in text.lower().split("x"))
    except ValueError:
        raise UsageError(f"{where}: '{text}' is not a shape like 1x64.") from None
    if not dims or min(dims) < 1:
        raise UsageError(f"{where}: '{text}' has a dimension below 1.")
    return dims


def parse_profile(text: str) -> Profile:
    """NAME:MIN,OPT,MAX with shapes written AxBxC (the --profile option)."""
    name, sep, shapes = text.partition(":")
    parts = shapes.split(",")
    if not sep or not name or len(parts) != 3:
        raise UsageError(
            f"--profile '{text}' is not NAME:MIN,OPT,MAX.", hint="e.g. --profile input_ids:1x64,4x64,16x64"
        )
    where = f"--profile {name}"
    return Profile(name, *(_shape(p, where) for p in parts))


def check_profile(profile: Profile, spec: TensorSpec) -> None:
    """Same rank as the input, fixed dims kept, and min <= opt <= max in every dim (else exit 2)."""
    where = f"The profile of input '{profile.name}'"
    for label, shape in (("min", profile.min), ("opt", profile.opt), ("max", profile.max)):
        if len(shape) != len(spec.shape):
            raise UsageError(f"{where}: {label} {_text(shape)} has rank {len(shape)}; the input has {len(spec.shape)}.")
        for i, (d, want) in enumerate(zip(shape, spec.shape)):
            if isinstance(want, int) and d != want:
                raise UsageError(f"{where}: {label} dim {i} is {d}, but the model fixes it at {want}.")
    for i, (lo, mid, hi) in enumerate(zip(profile.min, profile.opt, profile.max)):
        if not lo <= mid <= hi:
            raise UsageError(
                f"{where}: dim {i} has min {lo}, opt {mid}, max {hi}; it needs min <= opt <= max "
                f"(min {_text(profile.min)}, max {_text(profile.max)}).",
                hint="Write --profile NAME:MIN,OPT,MAX with each shape no larger than the next.",
            )


def derive(specs: tuple[TensorSpec, ...], data: Dataset | None, given: tuple[Profile, ...] = ()) -> list[Profile]:
    """A profile for every input with a free dim: the given one (checked), else derived (module docstring)."""
    by_name = {p.name: p for p in given}
    unknown = sorted(set(by_name) - {s.name for s in specs})
    if unknown:
        raise UsageError(
            f"--profile names no input of the model: {', '.join(unknown)}.",
            hint=f"Its inputs: {', '.join(s.name for s in specs)}.",
        )
    out = []
    for spec in specs:
        if spec.name in by_name:
            check_profile(by_name[spec.name], spec)
            out.append(by_name[spec.name])
            continue
        if all(isinstance(d, int) for d in spec.shape):
            continue
        sample = data.arrays[spec.name].shape if data is not None and spec.name in data.arrays else None
        ranges = [
            (d, d, d)
            if isinstance(d, int)
            else (1, 1, MAX_BATCH)
            if i == 0
            else (sample[i],) * 3
            if sample is not None
            else (FREE_DIM,) * 3
            for i, d in enumerate(spec.shape)
        ]
        lo, mid, hi = (tuple(r[k] for r in ranges) for k in range(3))
        out.append(Profile(spec.name, lo, mid, hi))
    return out


def _text(shape: Shape) -> str:
    return "x".join(map(str, shape))


def shapes_argument(profiles: list[Profile], which: str) -> str:
    """trtexec's --minShapes/--optShapes/--maxShapes value: name:AxB,name:CxD."""
    return ",".join(f"{p.name}:{_text(getattr(p, which))}" for p in profiles)
