"""The Runner interface every runtime implements (after Polygraphy's runners).

A runner is a context manager: activate loads the model, `infer(feed)` checks the feed against
the input metadata and returns outputs by name, deactivate frees it. Backends override the
small `*_impl` methods only.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping

import numpy as np

from edgekit.errors import DataError, EdgekitError, ModelLoadError
from edgekit.spec import TensorSpec, np_dtype


class Runner(abc.ABC):
    """Base runner: state checks and feed validation live here, once."""

    name = "runner"

    def __init__(self) -> None:
        self.is_active = False

    def __enter__(self) -> Runner:
        self.activate()
        return self

    def __exit__(self, *exc) -> None:
        self.deactivate()

    def activate(self) -> None:
        if not self.is_active:
            self.activate_impl()
            self.is_active = True

    def deactivate(self) -> None:
        if self.is_active:
            self.deactivate_impl()
            self.is_active = False

    def input_specs(self) -> tuple[TensorSpec, ...]:
        self._check_active()
        return self.input_specs_impl()

    def output_names(self) -> list[str]:
        self._check_active()
        return self.output_names_impl()

    def infer(self, feed: Mapping[str, np.ndarray], check: bool = True) -> dict[str, np.ndarray]:
        """Run one inference; outputs come back as float32/int numpy arrays, by output name."""
        self._check_active()
        if check:
            self.check_feed(feed)
        return self.infer_impl(feed)

    def check_feed(self, feed: Mapping[str, np.ndarray]) -> None:
        specs = self.input_specs()
        expected = {s.name for s in specs}
        missing, extra = expected - set(feed), set(feed) - expected
        if missing or extra:
            raise DataError(
                f"The inputs given ({', '.join(sorted(feed)) or 'none'}) do not match the model's "
                f"({', '.join(s.name for s in specs)}).",
                hint=(f"Missing: {', '.join(sorted(missing))}. " if missing else "")
                + (f"Unexpected: {', '.join(sorted(extra))}." if extra else ""),
            )
        for spec in specs:
            check_array(spec, feed[spec.name])

    def _check_active(self) -> None:
        if not self.is_active:
            raise EdgekitError(f"{self.name} runner used before activate(); use it as a context manager.")

    @abc.abstractmethod
    def activate_impl(self) -> None: ...

    def deactivate_impl(self) -> None:  # noqa: B027 (optional hook: most runtimes free nothing)
        pass

    @abc.abstractmethod
    def input_specs_impl(self) -> tuple[TensorSpec, ...]: ...

    @abc.abstractmethod
    def output_names_impl(self) -> list[str]: ...

    @abc.abstractmethod
    def infer_impl(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...


class RecordingRunner(Runner):
    """Another runner whose outputs are kept by feed content, so the same feed never runs twice: the source in
    the per-layer fallback's parity, which every attempt ran again on the same data. The inner runner is
    activated at the first feed it has not seen and deactivated with this one; past `max_bytes` of outputs
    kept (a language model's logits), further outputs are computed and not kept."""

    name = "recording"

    def __init__(self, inner: Runner, max_bytes: int = 256 << 20) -> None:
        super().__init__()
        self.inner, self.max_bytes, self.kept_bytes = inner, max_bytes, 0
        self.outputs: dict[bytes, dict[str, np.ndarray]] = {}

    def activate_impl(self) -> None:
        pass  # the inner runner only when a feed is new

    def deactivate_impl(self) -> None:
        self.inner.deactivate()

    def input_specs_impl(self) -> tuple[TensorSpec, ...]:
        self.inner.activate()
        return self.inner.input_specs()

    def output_names_impl(self) -> list[str]:
        self.inner.activate()
        return self.inner.output_names()

    def infer_impl(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        key = _feed_key(feed)
        if key in self.outputs:
            return self.outputs[key]
        self.inner.activate()
        out = self.inner.infer(feed, check=False)
        size = sum(v.nbytes for v in out.values())
        if self.kept_bytes + size <= self.max_bytes:
            self.outputs[key], self.kept_bytes = out, self.kept_bytes + size
        return out


def _feed_key(feed: Mapping[str, np.ndarray]) -> bytes:
    """A digest of the feed's names, dtypes, shapes and bytes."""
    import hashlib

    digest = hashlib.sha256()
    for name in sorted(feed):
        array = np.ascontiguousarray(feed[name])
        digest.update(f"{name}:{array.dtype}:{array.shape};".encode())
        digest.update(array.tobytes())
    return digest.digest()


def check_array(spec: TensorSpec, array: np.ndarray) -> None:
    """Raise DataError when `array` cannot feed `spec` (dtype, rank or a static dim differs)."""
    if array.dtype != np_dtype(spec.dtype) and not spec.dtype.startswith("onnx:"):
        raise DataError(
            f"Input '{spec.name}' is {array.dtype}; the model wants {spec.dtype}.",
            hint="Convert the data to the model's dtype before saving it.",
        )
    if len(array.shape) != len(spec.shape):
        raise DataError(
            f"Input '{spec.name}' has shape {tuple(array.shape)}; the model wants "
            f"{len(spec.shape)} dims ({'x'.join(map(str, spec.shape))})."
        )
    for i, (got, want) in enumerate(zip(array.shape, spec.shape)):
        if isinstance(want, int) and got != want:
            raise DataError(
                f"Input '{spec.name}' has shape {tuple(array.shape)}; the model wants "
                f"{'x'.join(map(str, spec.shape))} (dim {i} must be {want})."
            )


def run_in_slices(path, arrays: list[np.ndarray], step: int | None, run) -> list[np.ndarray]:
    """Outputs of `run` over `arrays` for a program that fixes its batch at `step` (None: any batch):
    run it on slices of that size and concatenate, so callers feed any batch that splits into it."""
    n = len(arrays[0]) if arrays and arrays[0].ndim else 1
    step = step or n
    if n % step:
        raise ModelLoadError(f"{path} has a fixed batch of {step}; a batch of {n} does not split into it.")
    parts = [run([a[i : i + step] for a in arrays]) for i in range(0, n, step)]
    return [np.concatenate([p[k] for p in parts]) for k in range(len(parts[0]))]
