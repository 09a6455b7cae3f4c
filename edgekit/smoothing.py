"""Activation smoothing (SmoothQuant) for int8, the part every runtime shares: the int8 grid a quantizer puts
tensors on, an activation's per-channel range with a sample of its rows, and the strength chosen per layer.

A per-tensor int8 scale on an activation with outlier channels (BERT-class LayerNorm and GELU outputs) leaves
the other channels a few levels. Dividing channel j of the activation by s_j and multiplying row j of each
weight that reads it by s_j computes the same product, with the outliers moved into the weights, which are
quantized per output channel. s_j = max|x_j|^alpha / max|w_j|^(1 - alpha); one global alpha suits some layers
and hurts others, so each group of layers reading one activation gets the alpha whose simulated int8
output error on the calibration data is lowest, or no smoothing when that does not lower it clearly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

ALPHAS = (0.25, 0.4, 0.5, 0.6, 0.75, 0.9)
MIN_GAIN = 0.8  # a group is smoothed only when its simulated error falls below this fraction of the plain one
SAMPLE_ROWS = 4096  # activation rows kept to simulate each group's error (channel ranges use every row)


@dataclass(frozen=True)
class Int8Grid:
    """The grid the quantizer will put tensors on, to simulate it: activations per tensor (min/max calibrated,
    as quantize_static's MinMax), weights symmetric per output channel."""

    activation_symmetric: bool
    activation_signed: bool
    weight_qmax: int  # 127, or 63 with reduce_range

    def activations(self, x: np.ndarray, lo: float, hi: float) -> np.ndarray:
        lo, hi = min(lo, 0.0), max(hi, 0.0)
        if self.activation_symmetric:
            bound = max(-lo, hi)
            lo, hi = -bound, bound
        scale = (hi - lo) / (254 if self.activation_symmetric else 255) or 1.0
        zero = 0.0 if self.activation_symmetric else np.round(-lo / scale)
        qmin, qmax = (-127, 127) if self.activation_symmetric else (0, 255)
        if self.activation_signed and not self.activation_symmetric:
            qmin, qmax, zero = -128, 127, zero - 128
        return (np.clip(np.round(x / scale) + zero, qmin, qmax) - zero) * scale

    def weights(self, w: np.ndarray) -> np.ndarray:
        scale = np.abs(w).max(axis=0, keepdims=True) / self.weight_qmax
        scale[scale == 0] = 1.0
        return np.clip(np.round(w / scale), -self.weight_qmax, self.weight_qmax) * scale


@dataclass
class ActivationStats:
    """One activation's per-channel range over the calibration data, and a sample of its rows."""

    lo: np.ndarray | None = None
    hi: np.ndarray | None = None
    rows: list[np.ndarray] = field(default_factory=list)

    def observe(self, x: np.ndarray, keep: int, rng: np.random.Generator) -> None:
        x = x.reshape(-1, x.shape[-1])
        lo, hi = x.min(axis=0), x.max(axis=0)
        self.lo = lo if self.lo is None else np.minimum(self.lo, lo)
        self.hi = hi if self.hi is None else np.maximum(self.hi, hi)
        self.rows.append(x[rng.choice(len(x), size=min(len(x), keep), replace=False)])


def choose_strength(
    stats: ActivationStats, weights: list[np.ndarray], grid: Int8Grid
) -> tuple[float | None, np.ndarray, float]:
    """For the layers that read one activation (`weights`: each as [in, out], x @ w), the alpha with the lowest
    simulated int8 output error (None: leave it unsmoothed), its scales s (divide the activation's channels by
    them, multiply the weights' rows) and that error relative to the unsmoothed one."""
    assert stats.lo is not None and stats.hi is not None and stats.rows
    x = np.concatenate(stats.rows)
    exact = [x @ w for w in weights]

    def error(scales: np.ndarray) -> float:
        xq = grid.activations(x / scales, float((stats.lo / scales).min()), float((stats.hi / scales).max()))
        return sum(
            float(((xq @ grid.weights(w * scales[:, None]) - y) ** 2).sum() / max(float((y**2).sum()), 1e-30))
            for w, y in zip(weights, exact, strict=True)
        )

    x_max = np.maximum(np.maximum(np.abs(stats.lo), np.abs(stats.hi)), 1e-5)
    w_max = np.maximum(np.max([np.abs(w).max(axis=1) for w in weights], axis=0), 1e-5)
    plain = error(np.ones_like(x_max))
    best: tuple[float | None, np.ndarray, float] = (None, np.ones_like(x_max), plain)
    for alpha in ALPHAS:
        scales = np.clip(x_max**alpha / w_max ** (1 - alpha), 1e-4, 1e4).astype(np.float32)
        err = error(scales)
        if err < best[2]:
            best = (alpha, scales, err)
    chosen, scales, err = best
    if chosen is None or plain == 0 or err > MIN_GAIN * plain:
        return None, scales, 1.0
    return chosen, scales, err / plain
