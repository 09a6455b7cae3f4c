"""`edgekit diff --reduce`: the smallest piece of an ONNX-based file that still diverges from the reference,
as a standalone .onnx with its inputs, the reference's outputs and a note for a bug report.

The piece starts at a weighted layer's input and ends at the first divergent layer's output. Fed the
reference's own values at its start, it must still diverge, so the error is made inside it, not carried in.
A bisection over the matched layers before the first divergent one finds the latest start that still does;
then the end moves back along the layer's own tensors (its output Q/DQ, bias) while it still diverges.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import UsageError
from edgekit.layerdiff.match import Match
from edgekit.layerdiff.metrics import LayerError, apply_activation, best_layout, lay_out

SAMPLES = 16  # reference inputs written beside the piece


@dataclass
class Reduced:
    folder: Path
    nodes: list[str]  # the piece's op types, in graph order
    start_layer: str
    end_layer: str
    inputs: list[str]
    outputs: list[str]
    metrics: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {**vars(self), "folder": str(self.folder), "node_count": len(self.nodes)}


class _Piece:
    """Runs candidate pieces of the artifact on the reference's values and says whether they diverge."""

    def __init__(self, art, ref_values, art_values, gate) -> None:
        self.art, self.ref, self.got, self.gate = art, ref_values, art_values, gate

    def feed_for(self, m: Match) -> tuple[str, np.ndarray]:
        """The reference's input to layer `m`, laid out as the artifact's tensor is."""
        assert m.artifact is not None
        name = m.artifact.tensors[0]
        want, got = self.ref[m.reference.name][0], self.got[m.artifact.name][0]
        how = best_layout(want, got)
        if how is None:
            raise UsageError(f"--reduce cannot lay the reference's input to {m.reference.name} out as {name}.")
        return name, np.ascontiguousarray(lay_out(want, got.shape, how), dtype=np.float32)

    def run(self, start: Match, end: Match, output: str, activation: str | None) -> tuple[bool, LayerError, Any]:
        from edgekit.backends.onnxruntime.runner import OnnxRuntimeRunner

        name, value = self.feed_for(start)
        piece = self.art.extract([name], [output])
        with OnnxRuntimeRunner(piece.SerializeToString()) as runner:
            (out,) = runner.infer({name: value}, check=False).values()
        want = self.ref[end.reference.name][1]
        if activation != end.reference.activation:
            want = apply_activation(activation, want)
        error = LayerError()
        atol, rtol = self.gate[1:]
        error.add("output", np.asarray(out, np.float32), want, atol, rtol, channel_axis=end.reference.channel_axis)
        return not self.gate[0](error.output), error, piece


def reduce_divergence(art, ref, matches: list[Match], first: str, feed: dict, gate, folder: Path) -> Reduced:
    """Write the smallest diverging piece into `folder`; `gate` is (passes(ErrorSums), atol, rtol)."""
    feed = {k: v[:SAMPLES] for k, v in feed.items()}
    pieces = _Piece(art, ref.run(feed), art.run(feed), gate)
    chain = [m for m in matches if m.artifact is not None and m.reference.name in pieces.ref]
    end = next(m for m in chain if m.reference.name == first)
    chain = chain[: chain.index(end) + 1]
    assert end.artifact is not None
    last, activation = end.artifact.tensors[1], end.artifact.activation
    diverges = lambda start: pieces.run(start, end, last, activation)[0]
    if not diverges(chain[0]):
        raise UsageError(
            f"Fed the reference's values, no piece of the file up to {first} diverges: the difference comes "
            "from before its first weighted layer, or only shows in the whole graph.",
        )
    lo, hi = 0, len(chain) - 1  # chain[lo] diverges; find the latest start that still does
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if diverges(chain[mid]) else (lo, mid - 1)
    start = chain[lo]
    for output, act in art.output_chain(art.nodes[end.artifact.name]):  # the earliest end that still diverges
        failed, error, piece = pieces.run(start, end, output, act)
        if failed:
            break
    return _write(folder, piece, pieces, start, end, output, act, error)


def _write(folder: Path, piece, pieces: _Piece, start: Match, end: Match, output, activation, error) -> Reduced:
    import onnx

    from edgekit.artifact import prepare_out_dir, write_text_atomic

    folder = prepare_out_dir(folder)
    name, value = pieces.feed_for(start)
    want = pieces.ref[end.reference.name][1]
    want = apply_activation(activation, want) if activation != end.reference.activation else want
    onnx.save(piece, str(folder / "reduced.onnx"))
    arrays: dict[str, Any] = {name: value}
    np.savez(folder / "inputs.npz", **arrays)
    arrays = {output: want}
    np.savez(folder / "expected.npz", **arrays)
    out = error.output
    reduced = Reduced(
        folder,
        [n.op_type for n in piece.graph.node],
        start.reference.name,
        end.reference.name,
        [name],
        [output],
        {"snr_db": round(out.snr_db, 3), "cosine": round(out.cosine, 6), "max_abs": round(out.max_abs, 6)},
    )
    write_text_atomic(folder / "README.md", _note(reduced, want.shape))
    return reduced


def _note(r: Reduced, shape: tuple[int, ...]) -> str:
    import onnx
    import onnxruntime

    return f"""# A {len(r.nodes)}-node ONNX graph whose output diverges from the reference

`reduced.onnx` ({" → ".join(r.nodes)}) is the part of the model from the input of layer `{r.start_layer}` to the
output of layer `{r.end_layer}`. Fed the reference model's own values at its input (`inputs.npz`), ONNX Runtime's
output `{r.outputs[0]}` (shape {list(shape)}) differs from the reference's (`expected.npz`):
SNR {r.metrics["snr_db"]} dB, cosine {r.metrics["cosine"]}, max |difference| {r.metrics["max_abs"]}.

```python
import numpy as np, onnxruntime as ort
feed = dict(np.load("inputs.npz"))
want = np.load("expected.npz")["{r.outputs[0]}"]
got = ort.InferenceSession("reduced.onnx").run(["{r.outputs[0]}"], feed)[0]
print("max |difference|:", np.abs(got.reshape(want.shape) - want).max())
```

onnx {onnx.__version__}, onnxruntime {onnxruntime.__version__}, Python {platform.python_version()},
{platform.machine()}. Written by `edgekit diff --reduce`.
"""
