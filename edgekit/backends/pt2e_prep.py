"""Rewrites of a torch model before PT2E static int8 (the litert-torch route's tflite-int8), each exact in float.

- SmoothQuant, the ONNX route's per-group strength choice (onnxruntime/smooth.py) on a torch.export graph: the
  division folds into a LayerNorm's weight and bias when only linear layers read it; elsewhere (a LayerNorm that
  also feeds a residual add, an attention's output) it is a multiply node, left float so that the activation is
  quantized after the division, and made only where the simulated error falls 4x. (Folding an attention's into its
  value projection, as the ONNX route does, won nothing measurable on MiniLM and would leave `edgekit diff` reading
  that projection's rescaled output channels as wrong scales; the multiplies it reads as part of the layer.)
- Per-channel output ranges: TFLite's int8 FULLY_CONNECTED writes its output on one scale, which BERT-class
  outlier channels stretch (MiniLM's PT2E file missed its gate on them). Output channel j is divided by c_j >= 1
  in the weight row and bias and multiplied back by a float multiply node after the layer, where that lowers the
  simulated error 4x: a channel split's effect for one elementwise op.
- Embedding tables int8 (one scale per row), looked up as int8 and scaled: the table a quarter of its float size.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgekit.backends.onnxruntime.smooth import (
    ALPHAS,
    METHOD,
    MIN_GAIN_WITH_MUL,
    SAMPLE_ROWS,
    ActivationStats,
    Int8Grid,
    choose_strength,
)
from edgekit.data import Dataset

ADDED = "edgekit_float_mul"  # node.meta key of the multiply nodes added here: the quantizer leaves them float
OUTPUT_CEILINGS = (50, 75, 90, 95, 99)  # percentiles of a layer's output channel ranges tried as the shared range
MIN_TABLE = 65536  # embedding tables with at least this many entries are stored int8
_PASS = ("aten.dropout.default", "aten.clone.default", "aten.contiguous.default", "aten.alias.default")
_SHAPE = (*_PASS, "aten.view.default", "aten.reshape.default", "aten.transpose.int", "aten.permute.default")
_LINEAR, _NORM = "aten.linear.default", "aten.layer_norm.default"
_ATTENTION = "aten.scaled_dot_product_attention.default"


@dataclass
class _Group:
    """Linear layers reading one activation (`tensor`, the node they read) and the parameters the division
    folds into (`divide`: divided along their first axis), or none: a multiply node."""

    tensor: Any
    linears: list[Any]
    divide: list[str]
    stats: ActivationStats = field(default_factory=ActivationStats)


def prepare(torch, graph_module, data: Dataset, names: list[str], grid: Int8Grid) -> tuple[Any, dict[str, Any]]:
    """SmoothQuant and per-channel output ranges on a copy of the captured graph; returns it and the sidecar's
    notes. The float outputs on one calibration sample must not change; when they do (a pattern read wrong) the
    graph is returned as it was, and the notes say so."""
    rewritten = copy.deepcopy(graph_module)
    notes = {"smoothing": _smooth(torch, rewritten, data, names, grid),
             "output_ranges": _balance_outputs(torch, rewritten, data, names, grid)}  # fmt: skip
    feeds = [torch.from_numpy(data.arrays[n][:1]).contiguous() for n in names]
    with torch.inference_mode():
        before, after = graph_module(*feeds), rewritten(*feeds)
    if not _same(torch, before, after):
        return graph_module, {"undone": "the rewrites changed the float outputs: none applied"}
    return rewritten, notes


def int8_tables(torch, module) -> int:
    """Store the module's large embedding tables int8 (per-row scales), in place; returns how many."""

    class Int8Embedding(torch.nn.Module):
        def __init__(self, weight) -> None:
            super().__init__()
            scale = weight.detach().abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / 127
            self.register_buffer("table", torch.round(weight.detach() / scale).clamp(-127, 127).to(torch.int8))
            self.register_buffer("scale", scale.float())

        def forward(self, ids):
            return self.table[ids].to(torch.float32) * self.scale[ids]

    swapped = 0
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            plain = type(child) is torch.nn.Embedding and child.max_norm is None
            if plain and child.weight.numel() >= MIN_TABLE and child.weight.dtype == torch.float32:
                setattr(parent, name, Int8Embedding(child.weight))
                swapped += 1
    return swapped


def _smooth(torch, graph_module, data: Dataset, names: list[str], grid: Int8Grid) -> dict[str, Any]:
    groups = _groups(graph_module)
    if not groups:
        return {"method": METHOD, "groups": 0, "smoothed": 0}
    _record(torch, graph_module, {g.tensor: g.stats for g in groups}, data, names)
    strengths, folded, muls, costly = [], 0, 0, 0
    for group in groups:
        weights = [_parameter(graph_module, lin.args[1]).detach().numpy().T for lin in group.linears]
        alpha, scales, gain = choose_strength(group.stats, weights, grid)
        if alpha is None or (not group.divide and gain > MIN_GAIN_WITH_MUL):
            costly += alpha is not None
            continue
        s = torch.from_numpy(scales)
        with torch.no_grad():
            for lin in group.linears:
                _parameter(graph_module, lin.args[1]).mul_(s[None, :])
            for target in group.divide:
                _divide_rows(graph_module.get_parameter(target), s)
        if group.divide:
            folded += 1
        else:
            mul = _float_mul(torch, graph_module, group.tensor, 1.0 / s, f"_edgekit_smooth_{muls}")
            for lin in group.linears:
                lin.replace_input_with(group.tensor, mul)
            muls += 1
        strengths.append(alpha)
    graph_module.recompile()
    return {
        "method": METHOD,
        "alphas_tried": list(ALPHAS),
        "groups": len(groups),
        "smoothed": folded + muls,
        "folded_into_parameters": folded,
        **({f"not_worth_a_mul (error not {1 / MIN_GAIN_WITH_MUL:g}x lower)": costly} if costly else {}),
        "strengths": {str(a): strengths.count(a) for a in sorted(set(strengths))},
    }


def _balance_outputs(torch, graph_module, data: Dataset, names: list[str], grid: Int8Grid) -> dict[str, Any]:
    linears = [n for n in graph_module.graph.nodes if _weighted(n)]
    stats = {lin: ActivationStats() for lin in linears}
    _record(torch, graph_module, stats, data, names)
    made = 0
    for lin, observed in stats.items():
        factors = _output_factors(observed, grid)
        if factors is None:
            continue
        c = torch.from_numpy(factors)
        with torch.no_grad():
            for param in lin.args[1:3]:
                _divide_rows(_parameter(graph_module, param), c)
        mul = _float_mul(torch, graph_module, lin, c, f"_edgekit_output_range_{made}")
        lin.replace_all_uses_with(mul, delete_user_cb=lambda user, mul=mul: user is not mul)
        made += 1
    graph_module.recompile()
    return {"method": "per-channel output ranges (a float multiply after the layer)", "layers": len(linears),
            "balanced": made}  # fmt: skip


def _output_factors(observed: ActivationStats, grid: Int8Grid) -> np.ndarray | None:
    """The per-channel divisors with the lowest simulated int8 output error (each channel's error relative to its
    own energy, averaged: the small channels count as much as the outliers), or None when it does not fall 4x."""
    assert observed.lo is not None and observed.hi is not None
    lo, hi, y = observed.lo, observed.hi, np.concatenate(observed.rows)
    energy = np.maximum((y**2).sum(axis=0), 1e-30)

    def error(c: np.ndarray) -> float:
        q = grid.activations(y / c, float((lo / c).min()), float((hi / c).max())) * c
        return float((((q - y) ** 2).sum(axis=0) / energy).mean())

    width = np.maximum(np.abs(lo), np.abs(hi))
    plain = error(np.ones_like(width))
    best, best_error = None, plain
    for percentile in OUTPUT_CEILINGS:
        c = np.maximum(width / max(float(np.percentile(width, percentile)), 1e-12), 1.0).astype(np.float32)
        err = error(c)
        if err < best_error:
            best, best_error = c, err
    return best if best is not None and best_error <= MIN_GAIN_WITH_MUL * plain else None


def _float_mul(torch, graph_module, node, factors, name: str):
    """A multiply of `node` by constant `factors` inserted after it, marked for the quantizer to leave float."""
    graph_module.register_buffer(name, factors.to(torch.float32))
    graph = graph_module.graph
    with graph.inserting_after(node):
        constant = graph.get_attr(name)
    with graph.inserting_after(constant):
        mul = graph.call_function(torch.ops.aten.mul.Tensor, (node, constant))
    mul.meta["val"] = node.meta.get("val")
    mul.meta[ADDED] = True
    return mul


def _divide_rows(parameter, factors) -> None:
    parameter.div_(factors.reshape(-1, *([1] * (parameter.dim() - 1))))


def _parameter(graph_module, node):
    return graph_module.get_parameter(node.target)


def _same(torch, a, b) -> bool:
    a, b = (a,) if not isinstance(a, (tuple, list)) else a, (b,) if not isinstance(b, (tuple, list)) else b
    return len(a) == len(b) and all(
        torch.allclose(x, y, rtol=1e-3, atol=1e-4 * float(x.abs().max())) for x, y in zip(a, b, strict=True)
    )


def _users_through(node, ops) -> list[Any]:
    """The nodes that read `node`, looking through the ops in `ops` (identity or shape ops)."""
    found = []
    for user in node.users:
        found.extend(_users_through(user, ops) if str(user.target) in ops else [user])
    return found


def _weighted(node) -> bool:
    """A linear layer with a bias whose weight and bias are parameters no other node reads."""
    params = node.args[1:3]
    return (
        str(node.target) == _LINEAR
        and len(params) == 2
        and all(getattr(p, "op", None) == "get_attr" and len(p.users) == 1 for p in params)
    )


def _groups(graph_module) -> list[_Group]:
    """The activations read by linear layers whose division folds into parameters or a multiply node."""
    groups = []
    for node in graph_module.graph.nodes:
        if str(node.target) == _ATTENTION and len(node.users) == 1:
            readers = _users_through(node, _SHAPE)
            if len(readers) == 1 and _weighted(readers[0]):
                groups.append(_Group(readers[0].args[0], readers, []))
        elif str(node.target) == _NORM:
            readers = _users_through(node, _PASS)
            linears = [r for r in readers if _weighted(r)]
            if not linears or len({lin.args[0] for lin in linears}) != 1:
                continue
            affine = node.args[2:4]
            foldable = len(linears) == len(readers) and all(
                getattr(a, "op", None) == "get_attr" and len(a.users) == 1 for a in affine
            )
            groups.append(_Group(linears[0].args[0], linears, [a.target for a in affine] if foldable else []))
    return groups


def _record(torch, graph_module, stats: dict[Any, ActivationStats], data: Dataset, names: list[str]) -> None:
    """Run every calibration sample once, observing the value of each node in `stats`."""
    keep = max(1, SAMPLE_ROWS // max(1, len(data)))
    rng = np.random.default_rng(0)

    class Recorder(torch.fx.Interpreter):
        def run_node(self, n):
            out = super().run_node(n)
            if n in stats:
                stats[n].observe(out.detach().float().numpy(), keep, rng)
            return out

    recorder = Recorder(graph_module)
    with torch.inference_mode():
        for i in range(len(data)):
            recorder.run(*[torch.from_numpy(data.arrays[n][i : i + 1]).contiguous() for n in names])
