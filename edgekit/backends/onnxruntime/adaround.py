"""AdaRound before static int8 (Nagel et al., 2020): rounding each weight to the nearest int8 step is not what
keeps a layer's output closest to the float layer's; whether each weight rounds up or down is learned instead,
layer by layer, against the layer's output on the calibration data. The learned weights are written back on the
int8 grid, so ONNX Runtime's round-to-nearest reproduces the choice (each channel's largest weight stays where it
is, so the scale the quantizer derives from it does too).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from edgekit._lazy import require
from edgekit.backends.onnxruntime.bias_correction import WeightGrid, weight_as_out_in
from edgekit.backends.onnxruntime.probe import probe
from edgekit.data import Dataset

METHOD = "AdaRound (each weight rounded up or down as fits the layer's output on the calibration data)"
ZETA, GAMMA = 1.1, -0.1  # the rectified sigmoid's stretch: h(V) reaches exactly 0 and 1
REGULARIZATION = 10.0  # weight of the term that drives each h(V) to 0 or 1, against the output error relative to
# rounding to nearest: weaker (0.01 to 1) left h(V) between 0 and 1 where the hard rounding then lost (measured)
WARMUP = 0.2  # share of the iterations with no such term: the rounding first moves freely
BETA = (20.0, 2.0)  # the term's exponent, annealed: flat at first, then pulling every h(V) to 0 or 1
MAX_ROWS = 4096  # inputs kept per matrix layer (rows of its input)
MAX_BYTES = 64 << 20  # inputs kept per convolution (whole feature maps)


@dataclass(frozen=True)
class AdaRoundSettings:
    """How long each layer learns, and on how much of its input at a time."""

    iterations: int = 1000
    batch_rows: int = 512  # rows of a matrix layer's input per step
    batch_maps: int = 16  # feature maps of a convolution's input per step
    seed: int = 0


def adaround(
    model: Any,
    data: Dataset,
    batch_size: int,
    grid: WeightGrid,
    skip: set[str],
    settings: AdaRoundSettings,
    learned_before: dict[str, tuple[np.ndarray, float]] | None = None,
) -> dict[str, Any]:
    """Replace the weights of `model`'s Conv, Gemm and MatMul nodes (not those named in `skip`: kept float) by
    their learned rounding on `grid`, in place; returns what was done, for the sidecar. `learned_before` (weight
    name -> rounded weight as stored, output error ratio) is used where it has a layer's weight, and gains the
    ones learned now: the fallback's attempts differ only in the layers they skip."""
    memo = {} if learned_before is None else learned_before
    torch = require("torch", "AdaRound (--adaround)")
    from onnx import numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    layers = [(n, w) for n in model.graph.node if n.name not in skip and (w := weight_as_out_in(n, inits)) is not None]
    shared = {n.input[1] for n, _ in layers if sum(m.input[1] == n.input[1] for m, _ in layers) > 1}
    layers = [(n, w) for n, w in layers if n.input[1] not in shared]  # a weight two layers read fits neither alone
    if not layers:
        return {"method": METHOD, "layers": 0}
    new = [n for n, _ in layers if n.input[1] not in memo]
    inputs = _layer_inputs(model, new, data, batch_size, np.random.default_rng(settings.seed)) if new else {}
    torch.manual_seed(settings.seed)
    ratios, flipped, kept_nearest, total = [], 0, 0, 0
    for node, w in layers:
        nearest = grid.rounded(w)
        if node.input[1] not in memo:
            learned, ratio = _learn(torch, _forward(node, torch), w, nearest, inputs[node.input[0]], grid, settings)
            if ratio >= 1.0:  # no better than rounding to nearest on the layer's output: keep that
                learned, ratio = nearest, 1.0
            memo[node.input[1]] = _as_stored(node, learned), ratio
        value, ratio = memo[node.input[1]]  # the weight as the node stores it
        flipped += int((value != _as_stored(node, nearest)).sum())
        kept_nearest += ratio == 1.0
        total += w.size
        ratios.append(ratio)
        inits[node.input[1]].CopyFrom(numpy_helper.from_array(value.astype(np.float32), node.input[1]))
    return {
        "method": METHOD,
        "layers": len(layers),
        "iterations": settings.iterations,
        "weights_rounded_away_from_nearest": round(flipped / total, 4),
        "median_error_ratio": round(float(np.median(ratios)), 3),  # the layer's output error vs round-to-nearest
        "layers_kept_nearest": kept_nearest,
        **({"skipped_shared_weights": len(shared)} if shared else {}),
    }


def _learn(torch, forward, w: np.ndarray, nearest: np.ndarray, x: np.ndarray, grid: WeightGrid,
           settings: AdaRoundSettings):  # fmt: skip
    """The weight `w` ([out, in, ...]) rounded on `grid` as learned on the layer inputs `x`, and its output error
    on all of `x` relative to `nearest`'s (`w` rounded to nearest)."""
    scale = grid.scale(w)
    ratio_grid = w / scale
    floor = np.floor(ratio_grid)
    peak = np.abs(ratio_grid) >= grid.qmax - 1e-6  # the weights that set the scale: kept where they are
    rest = torch.tensor(ratio_grid - floor, dtype=torch.float32)
    v = torch.nn.Parameter(-torch.log((ZETA - GAMMA) / (rest.clamp(1e-4, 1 - 1e-4) - GAMMA) - 1))
    floor_t, scale_t = torch.tensor(floor, dtype=torch.float32), torch.tensor(scale, dtype=torch.float32)
    w_t, x_t = torch.tensor(w), torch.tensor(x)
    with torch.no_grad():
        target = forward(x_t, w_t)
        base = float(((forward(x_t, torch.tensor(nearest)) - target) ** 2).mean()) or 1e-30
    optimizer = torch.optim.Adam([v], lr=3e-2)
    per_step = settings.batch_maps if w.ndim > 2 else settings.batch_rows
    warm = int(WARMUP * settings.iterations)
    for step in range(settings.iterations):
        pick = torch.randint(0, len(x_t), (min(per_step, len(x_t)),))
        h = torch.clamp(torch.sigmoid(v) * (ZETA - GAMMA) + GAMMA, 0, 1)
        soft = scale_t * torch.clamp(floor_t + h, -grid.qmax, grid.qmax)
        loss = ((forward(x_t[pick], soft) - target[pick]) ** 2).mean() / base
        if step >= warm:
            beta = BETA[1] + (BETA[0] - BETA[1]) * (1 - (step - warm) / max(1, settings.iterations - warm))
            loss = loss + REGULARIZATION * (1 - (2 * h - 1).abs() ** beta).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        up = (v >= 0).numpy()  # h(V) >= 0.5
        q = np.where(peak, np.round(ratio_grid), np.clip(floor + up, -grid.qmax, grid.qmax))
        learned = (q * scale).astype(np.float32)
        error = float(((forward(x_t, torch.tensor(learned)) - target) ** 2).mean())
    return learned, error / base


def _forward(node: Any, torch) -> Any:
    """The layer's product without its bias, as a function of (input, weight [out, in, ...])."""
    if node.op_type != "Conv":
        return lambda x, w: x @ w.T
    from onnx import helper

    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    fn = {3: torch.nn.functional.conv1d, 4: torch.nn.functional.conv2d, 5: torch.nn.functional.conv3d}
    pads = list(attrs.get("pads", []))
    half = len(pads) // 2
    # ONNX pads as [begin..., end...]; torch's F.pad takes (last-begin, last-end, ...) pairs, last axis first
    pairs = [v for d in reversed(range(half)) for v in (pads[d], pads[d + half])]
    strides, dilations, groups = attrs.get("strides", 1), attrs.get("dilations", 1), attrs.get("group", 1)

    def conv(x, w):
        x = torch.nn.functional.pad(x, pairs) if any(pairs) else x
        return fn[w.ndim](x, w, None, strides, 0, dilations, groups)

    return conv


def _as_stored(node: Any, w: np.ndarray) -> np.ndarray:
    """A weight given as [out, in, ...] laid out as the node stores it (a MatMul's, or a Gemm's without transB,
    as [in, out])."""
    out_in = node.op_type == "Conv" or any(a.name == "transB" and a.i for a in node.attribute)
    return w if out_in else w.T


def _layer_inputs(model: Any, nodes: list[Any], data: Dataset, batch_size: int, rng) -> dict[str, np.ndarray]:
    """A sample of each layer's input on the calibration data: rows of a matrix layer's (its last axis the
    features; as many from each batch, up to MAX_ROWS), whole feature maps of a convolution's (up to MAX_BYTES)."""
    names = sorted({n.input[0] for n in nodes})
    conv = {n.input[0] for n in nodes if n.op_type == "Conv"}
    kept: dict[str, list[np.ndarray]] = {name: [] for name in names}
    held: dict[str, int] = dict.fromkeys(names, 0)
    per_batch = -(-MAX_ROWS // -(-len(data) // batch_size))
    for values in probe(model, names, data, batch_size):
        for name, x in zip(names, values, strict=True):
            x = np.asarray(x, dtype=np.float32)
            if name in conv:
                part = x[: max(0, (MAX_BYTES - held[name]) // max(1, x[0].nbytes))]
                held[name] += part.nbytes
            else:
                rows = x.reshape(-1, x.shape[-1])
                part = rows[rng.permutation(len(rows))[:per_batch]]
            if len(part):
                kept[name].append(part)
    return {name: np.concatenate(parts) for name, parts in kept.items() if parts}
