"""Pair the weighted layers of two models by their weights.

Names do not survive export (an ONNX node, a TFLite tensor) and neither do layouts (OIHW vs OHWI, a MatMul's
transposed weight), but weights do, up to a scale per output channel (a folded BatchNorm, int8 rounding, a
wrong quantization scale). Two layers match when their weights, rows taken along the output channels and
laid out alike, point the same way: the mean cosine of the rows is at least MIN_COSINE.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass

import numpy as np

from edgekit.backends.taps import TapLayer

MIN_COSINE = 0.95


@dataclass(frozen=True)
class Match:
    reference: TapLayer
    artifact: TapLayer | None  # None: no layer of the other model has its weights
    cosine: float | None = None  # how alike the weights are

    @functools.cached_property
    def folded_batch_norm(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The batch norm that follows the reference layer in the source, as (scale, shift), when the artifact's
        weights are the reference's times its scale (a converter folded it in: compare with it applied); None
        when they are the reference's own, or no batch norm follows. Decided once per pair, from the weights."""
        r, a = self.reference, self.artifact
        if r.batch_norm is None or a is None:
            return None
        laid = max(_layouts(r, a), key=lambda xy: _mean_row_cosine(*xy), default=None)
        if laid is None:
            return None
        x, y = laid
        scale = np.sum(x * y, axis=1) / np.maximum(np.sum(x * x, axis=1), 1e-30)  # each row's factor
        folded = float(np.median(np.abs(scale - r.batch_norm[0]))) < float(np.median(np.abs(scale - 1)))
        return r.batch_norm if folded else None


def _rows(layer: TapLayer) -> np.ndarray:
    return np.moveaxis(layer.weight, layer.out_axis, 0)


def _layouts(a: TapLayer, b: TapLayer):
    """b's weight rows in each layout that has a's shape, with a's rows: (a rows, b rows) as 2-D float64."""
    ra, rb = _rows(a), _rows(b)
    if ra.shape[0] != rb.shape[0] or sorted(ra.shape[1:]) != sorted(rb.shape[1:]):
        if ra.size == rb.size and ra.shape[0] == rb.shape[0]:  # a flattened filter (a conv as a matmul)
            rb = rb.reshape(ra.shape)
        else:
            return
    for perm in itertools.permutations(range(1, rb.ndim)):
        cand = np.transpose(rb, (0, *perm))
        if cand.shape == ra.shape:
            yield ra.reshape(len(ra), -1).astype(np.float64), cand.reshape(len(cand), -1).astype(np.float64)


def _mean_row_cosine(x: np.ndarray, y: np.ndarray) -> float:
    norms = np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1)
    live = norms > 0
    return float(np.mean(np.sum(x * y, axis=1)[live] / norms[live])) if live.any() else 0.0


def weight_cosine(a: TapLayer, b: TapLayer) -> float:
    """The best mean row cosine over the layouts of b's weight that have a's shape (0.0 when none has)."""
    return max((_mean_row_cosine(x, y) for x, y in _layouts(a, b)), default=0.0)


def match_layers(reference: list[TapLayer], artifact: list[TapLayer]) -> list[Match]:
    """Each reference layer with the artifact layer whose weights are most alike (each used once)."""
    scores = sorted(
        ((weight_cosine(r, a), i, j) for i, r in enumerate(reference) for j, a in enumerate(artifact)),
        key=lambda t: (-t[0], t[1], t[2]),
    )
    taken: dict[int, Match] = {}
    used: set[int] = set()
    for cosine, i, j in scores:
        if cosine < MIN_COSINE:
            break
        if i in taken or j in used:
            continue
        taken[i] = Match(reference[i], artifact[j], round(cosine, 4))
        used.add(j)
    return [taken.get(i, Match(r, None)) for i, r in enumerate(reference)]
