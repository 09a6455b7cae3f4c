"""Channel groups: per-embedding-group quantization (Bondarenko et al., 2021), the rule shared by the runtimes.

An int8 layer takes its input at one scale and (where its runtime requantizes) gives its output at one scale. On
BERT-class models a few input channels (LayerNorm outputs) and output channels (the feed-forward output) run
~100x the median, so one scale leaves the median channel a handful of levels. Splitting such a layer's input and
output channels into groups of like range, each quantized at its own scale, computes the same product with the
int8 products summed over input groups and concatenated over output groups in float. This module decides the
groups from per-channel ranges; each runtime rewrites its graph with them (PyTorch Mobile: torch_mobile/groups.py,
TFLite's ONNX route: litert/onnx_groups.py).
"""

from __future__ import annotations

import numpy as np

# the option's help, one text for every runtime that has it (the CLI shows one flag)
OPTION_HELP = (
    "int8 (tflite-int8 through ONNX, pytorch-mobile-int8 layer by layer): a layer whose input or output channels "
    "span unlike ranges (BERT's LayerNorm and feed-forward outputs) is split into groups of like channels, each "
    "with its own int8 scales, joined in float"
)
MAX_GROUPS = 3
# a split is taken when it cuts the rounding-noise estimate (sum over groups of channels x range^2) this much
MIN_GAIN = 4.0


def range_groups(ranges: np.ndarray, max_groups: int = MAX_GROUPS, min_gain: float = MIN_GAIN) -> list[np.ndarray]:
    """Channel indices in groups of like range (each group a run of the channels sorted by range), chosen to
    minimise the rounding noise one scale per group leaves: sum of (channels x widest range^2). One group when
    splitting gains less than `min_gain`."""
    order = np.argsort(-ranges, kind="stable")
    widths = ranges[order].astype(np.float64) ** 2
    n = len(widths)
    # cost[g][i]: the least noise for channels order[i:] in at most g + 1 groups; cut[g][i]: where its first ends
    cost = [np.append((n - np.arange(n)) * widths, 0.0)]
    cut = [np.full(n + 1, n)]
    for _ in range(1, max_groups):
        best, ends = cost[-1].copy(), cut[-1].copy()
        for i in range(n):
            j = np.arange(i + 1, n)
            if len(j):
                split = (j - i) * widths[i] + cost[-1][j]
                k = int(np.argmin(split))
                if split[k] < best[i]:
                    best[i], ends[i] = split[k], j[k]
        cost.append(best)
        cut.append(ends)
    if cost[-1][0] * min_gain > cost[0][0]:
        return [np.arange(n)]
    groups, i, level = [], 0, max_groups - 1
    while i < n:
        end = int(cut[level][i])
        groups.append(np.sort(order[i:end]))
        i, level = end, max(level - 1, 0)
    return groups


def grouping(ranges: dict[str, tuple]) -> dict[str, tuple[list[np.ndarray], list[np.ndarray]]]:
    """The (input groups, output groups) of each layer that splits either."""
    found = {}
    for name, (inputs, outputs) in ranges.items():
        split = range_groups(inputs), range_groups(outputs)
        if len(split[0]) > 1 or len(split[1]) > 1:
            found[name] = split
    return found


def sidecar_notes(groups: dict[str, tuple[list, list]]) -> dict:
    """The sidecar's record of a grouping: the rule, and each split layer's input and output group counts."""
    return {
        "method": "per-embedding-group int8: a layer's input and output channels in groups of like range, each "
        f"its own scale (up to {MAX_GROUPS} each, where the rounding-noise estimate falls {MIN_GAIN:g}x)",
        "layers": {name: {"input": len(i), "output": len(o)} for name, (i, o) in groups.items()},
    }
