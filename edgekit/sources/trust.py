"""Whether loading a model file may run code stored in it: never, unless the user opts in (`--unsafe-load`).

Model files are untrusted data. Most formats edgekit reads hold only tensors and a graph of ops (ONNX,
TFLite, safetensors, npz without pickles); some can carry Python: a Keras `Lambda` layer stores its
function's bytecode, and a Keras config can name a class in any importable module. Loaders that read such
formats look for that code first and refuse it, naming the layer, unless `unsafe_load()` is in effect.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from edgekit.errors import ModelLoadError

_UNSAFE = contextvars.ContextVar("edgekit_unsafe_load", default=False)
UNSAFE_HINT = (
    "Load it only if you trust where it came from: --unsafe-load (Python: `with edgekit.unsafe_load():`). "
    "Better, rebuild the model without them (a Lambda layer as a layer class of its own, saved with the weights)."
)


@contextmanager
def unsafe_load(enabled: bool = True) -> Iterator[None]:
    """Within this block, loaders may run code a model file carries (Keras Lambda layers, custom classes)."""
    token = _UNSAFE.set(enabled)
    try:
        yield
    finally:
        _UNSAFE.reset(token)


def unsafe_allowed() -> bool:
    return _UNSAFE.get()


def refuse_code(path: Path, carriers: list[str]) -> None:
    """Raise (exit 2) when `carriers` (what in the file holds code) is not empty and the user did not opt in."""
    if carriers and not unsafe_allowed():
        raise ModelLoadError(
            f"{path} carries code that loading it would run: {'; '.join(carriers)}.",
            hint=UNSAFE_HINT,
        )
