"""Activation ranges chosen by the squared error int8 leaves (`--calibration mse`): for each tensor ONNX Runtime
calibrates, the clipping range that minimizes rounding plus clipping error over its calibration histogram.

MinMax lets one rare value stretch a range over which the bulk gets a few levels; a fixed percentile clips the
same share of every tensor whether its tail matters or not. MSE weighs both per tensor. The ranges go to
quantize_static through its calibration cache, so ONNX Runtime places every Q/DQ pair as it does for its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

# candidate ends of the range: each of the measured min and max scaled by these factors (1: no clipping)
SHRINK = np.linspace(0.05, 1.0, 40)
BINS = 2048  # histogram bins per tensor (ONNX Runtime's percentile default)


def mse_range(counts: np.ndarray, edges: np.ndarray, lo: float, hi: float, levels: int = 256) -> tuple[float, float]:
    """The [low, high] (holding 0, as the runtimes require) whose `levels`-step grid leaves the least squared
    error over a histogram of the values (`counts` per bin between `edges`) that ran from `lo` to `hi`."""
    centers = (edges[:-1] + edges[1:]) / 2
    keep = counts > 0
    centers, weights = centers[keep].astype(np.float64), counts[keep].astype(np.float64)
    if not len(centers) or lo == hi:
        return lo, hi
    lows = np.minimum(lo, 0.0) * SHRINK  # (40,)
    highs = np.maximum(hi, 0.0) * SHRINK
    low, high = np.meshgrid(lows, highs, indexing="ij")  # every pair: (40, 40)
    low, high = low.ravel()[:, None], high.ravel()[:, None]
    step = np.maximum(high - low, 1e-12) / (levels - 1)
    clipped = np.clip(centers[None, :], low, high)
    # rounding error within the range (uniform over a step), the clipped distance outside it
    error = np.where(centers[None, :] == clipped, step**2 / 12, (centers[None, :] - clipped) ** 2)
    best = int(np.argmin(error @ weights))
    return float(low[best, 0]), float(high[best, 0])


def mse_ranges(model: Path, reader: Any, op_types: list[str], work: Path) -> Any:
    """ONNX Runtime's calibration ranges (TensorsData, recorded as MinMax) for the tensors it would calibrate in
    `model` for `op_types`, each clipped where its squared int8 error is least on the data `reader` feeds."""
    from onnxruntime.quantization.calibrate import CalibrationMethod, TensorData, TensorsData, create_calibrator

    calibrator = create_calibrator(
        model,
        op_types,
        augmented_model_path=str(work / "mse-augmented.onnx"),
        calibrate_method=CalibrationMethod.Percentile,  # its collector keeps a histogram of the values
        extra_options={"symmetric": False, "num_bins": BINS},
    )
    calibrator.collect_data(reader)
    ranges = {}
    for name, (counts, edges, lo, hi, *_) in calibrator.collector.histogram_dict.items():
        low, high = mse_range(counts, edges, float(lo), float(hi))
        ranges[name] = TensorData(lowest=np.array(low, np.float32), highest=np.array(high, np.float32))
    return TensorsData(CalibrationMethod.MinMax, ranges)
