"""Error of one layer's tensors against the reference's, summed over batches so no tensor is kept."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

_ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "RELU": lambda x: np.maximum(x, 0),
    "RELU6": lambda x: np.clip(x, 0, 6),
    "RELU_N1_TO_1": lambda x: np.clip(x, -1, 1),
    "TANH": np.tanh,
    "SIGMOID": lambda x: 1 / (1 + np.exp(-x)),
    "SWISH": lambda x: x / (1 + np.exp(-x)),  # EfficientNet's squeeze-excitation layers carry it (Keras)
}


def apply_activation(name: str | None, x: np.ndarray) -> np.ndarray:
    """The reference's output as the artifact's op computes it, with its fused activation."""
    return _ACTIVATIONS[name](x) if name is not None and name in _ACTIVATIONS else x


def layouts(got: np.ndarray, shape: tuple[int, ...]) -> list[tuple[str, tuple[int, ...] | None]]:
    """The ways to lay `got` out as `shape`: axis orders that give it (NHWC -> NCHW), or a reshape
    (a (batch*tokens, features) matmul against (batch, tokens, features)). A shape that is its own transpose (an
    NCHW map with as many channels as rows and columns against an NHWC one) keeps the transposes as options."""
    found: list[tuple[str, tuple[int, ...] | None]] = [("same", None)] if got.shape == shape else []
    found += [
        ("transpose", p)
        for p in itertools.permutations(range(got.ndim))
        if got.ndim == len(shape)
        and tuple(got.shape[i] for i in p) == shape
        and p[0] == 0
        and p != tuple(range(got.ndim))
    ]
    if not found and got.size == int(np.prod(shape)):
        found.append(("reshape", None))
    return found


def best_layout(got: np.ndarray, target: np.ndarray) -> tuple[str, tuple[int, ...] | None] | None:
    """The layout of `got` as `target`'s shape closest to `target` (several axis orders fit square maps), or
    None when none fits."""
    options = layouts(got, target.shape)
    if not options:
        return None
    return min(options, key=lambda o: float(np.sum((lay_out(got, target.shape, o) - target) ** 2)))


def lay_out(got: np.ndarray, shape: tuple[int, ...], how: tuple[str, tuple[int, ...] | None]) -> np.ndarray:
    kind, perm = how
    if kind == "transpose":
        return np.transpose(got, perm)
    if kind == "reshape":
        return got.reshape(shape)
    return got


@dataclass
class ErrorSums:
    """Sums over every batch of (got - want) and want, enough for the relative error, SNR and cosine."""

    sq_err: float = 0.0
    sq_want: float = 0.0
    sq_got: float = 0.0
    dot: float = 0.0
    max_abs: float = 0.0
    over_tolerance: int = 0  # elements outside atol + rtol * |want|
    elements: int = 0
    # per output channel (the reference's channel axis): squared error and energy, for the median channel's SNR
    channel_err: np.ndarray | None = None
    channel_want: np.ndarray | None = None

    def add(self, got: np.ndarray, want: np.ndarray, atol: float, rtol: float, channel_axis: int = -1) -> None:
        g, w = got.astype(np.float64), want.astype(np.float64)
        d = g - w
        if w.ndim >= 2:
            others = tuple(a for a in range(w.ndim) if a != channel_axis % w.ndim)
            err, energy = np.sum(d * d, axis=others), np.sum(w * w, axis=others)
            self.channel_err = err if self.channel_err is None else self.channel_err + err
            self.channel_want = energy if self.channel_want is None else self.channel_want + energy
        self.sq_err += float(np.sum(d * d))
        self.sq_want += float(np.sum(w * w))
        self.sq_got += float(np.sum(g * g))
        self.dot += float(np.sum(g * w))
        self.max_abs = max(self.max_abs, float(np.max(np.abs(d))) if d.size else 0.0)
        self.over_tolerance += int(np.count_nonzero(np.abs(d) > atol + rtol * np.abs(w)))
        self.elements += d.size

    @property
    def relative_error(self) -> float:
        """Squared error over the reference's energy (0: identical)."""
        return self.sq_err / self.sq_want if self.sq_want > 0 else self.sq_err

    @property
    def snr_db(self) -> float:
        rel = self.relative_error
        return math.inf if rel == 0 else -10 * math.log10(rel)

    @property
    def median_channel_snr_db(self) -> float | None:
        """The SNR of the median output channel: low where a range stretched over one channel's outliers leaves
        the others a few int8 steps, which the whole tensor's SNR (dominated by that channel) hides."""
        if self.channel_err is None or self.channel_want is None:
            return None
        live = self.channel_want > 0
        if not live.any():
            return None
        ratio = self.channel_err[live] / self.channel_want[live]
        middle = float(np.median(ratio))
        return math.inf if middle == 0 else -10 * math.log10(middle)

    @property
    def cosine(self) -> float:
        norms = math.sqrt(self.sq_got * self.sq_want)
        return self.dot / norms if norms > 0 else (1.0 if self.sq_err == 0 else 0.0)


FOLDED_SNR_DB = 60.0


def folded_scale(got: np.ndarray, want: np.ndarray) -> float | None:
    """The constant c with got == c * want to FOLDED_SNR_DB, when c is not 1 (else None)."""
    g, w = got.astype(np.float64).ravel(), want.astype(np.float64).ravel()
    ww = float(w @ w)
    if ww == 0:
        return None
    c = float(g @ w) / ww
    residual = float(np.sum((g - c * w) ** 2)) / max(float(g @ g), 1e-30)
    if abs(c - 1) <= 1e-3 or c == 0 or residual > 10 ** (-FOLDED_SNR_DB / 10):
        return None
    return c


@dataclass
class LayerError:
    """One matched layer's output error, the error already in its input, and how its tensors were laid out."""

    output: ErrorSums = field(default_factory=ErrorSums)
    input: ErrorSums = field(default_factory=ErrorSums)
    layout: dict[str, tuple[str, tuple[int, ...] | None]] = field(default_factory=dict)
    scale: float | None = None  # a constant the file's output carries (a converter's fold), divided out

    def add(
        self,
        which: str,
        got: np.ndarray,
        want: np.ndarray,
        atol: float,
        rtol: float,
        fold: bool = False,
        channel_axis: int = -1,
    ) -> bool:
        """Add one batch of the `which` ("input"/"output") tensor; False when no layout fits the reference's.
        `fold`: on the first batch, an output that is the reference's times a constant (to FOLDED_SNR_DB) is
        taken for a converter's fold (float weights only: litert-torch splits attention's 1/sqrt(d) between
        query and key) and compared divided by it from then on."""
        how = self.layout.get(which)
        first = how is None
        if how is None:
            how = best_layout(got, want)  # chosen on the first batch, then kept
            if how is None:
                return False
            self.layout[which] = how
        laid = lay_out(got, want.shape, how)
        if first and fold and which == "output":
            self.scale = folded_scale(laid, want)
        if which == "output" and self.scale is not None:
            laid = laid / np.float32(self.scale)
        getattr(self, which).add(laid, want, atol, rtol, channel_axis)
        return True

    @property
    def added_error(self) -> float:
        """The relative error this layer adds: its output's beyond its input's (never below 0)."""
        return max(self.output.relative_error - self.input.relative_error, 0.0)
