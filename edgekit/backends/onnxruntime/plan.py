"""The ONNX Runtime recipe: the catalog's scheme turned into the quantizer's settings."""

from __future__ import annotations

from dataclasses import dataclass

from edgekit.catalog.schema import Recipe


@dataclass(frozen=True)
class OrtPlan:
    """What onnxruntime.quantization is told: types, symmetry, granularity, and which ops go int8."""

    target: str
    device: str
    int8_ops: tuple[str, ...]
    activation_type: str  # int8 | uint8
    weight_type: str
    activation_symmetric: bool
    weight_symmetric: bool
    per_channel: bool
    reduce_range: bool
    max_outlier_ratio: float | None
    quantize_activation_products: bool
    # more quantize_static extra_options, as (key, value) pairs (the TensorRT backend's Q/DQ placement)
    extra_options: tuple[tuple[str, object], ...] = ()
    # layers the fallback keeps float still get int8 weights behind a DequantizeLinear (ONNX Runtime runs
    # that as a float layer); TensorRT wants them wholly float
    kept_weights_int8: bool = True
    # SmoothQuant before calibration, its strength per layer group (edgekit.backends.onnxruntime.smooth)
    smooth_activations: bool = True

    @property
    def weight_qmax(self) -> int:
        """The largest int8 weight ONNX Runtime writes: 127, or 64 with reduce_range (its 7-bit [-64, 64])."""
        return 64 if self.reduce_range else 127


# Weighted layers whose int8 product is dequantized to float instead of requantized: ONNX Runtime's CPU kernel
# for that (MatMulIntegerToFloat) is as fast, and a per-tensor int8 scale on a BERT FFN's output (outlier
# channels ~100x the median) left the median channel at 1 dB SNR: MiniLM lost 3.5 pt of accuracy with it.
_FLOAT_OUTPUT_OPS = ("MatMul", "Gemm")


def ort_plan(recipe: Recipe) -> OrtPlan | None:
    """None for float targets; ONNX Runtime's QDQ and integer kernels honour every scheme the catalog can name."""
    scheme, ops = recipe.scheme, recipe.int8_ops
    if scheme is None:
        return None
    return OrtPlan(
        recipe.target,
        recipe.device,
        recipe.int8_ops,
        scheme.activations.dtype,
        scheme.weights.dtype,
        scheme.activations.symmetric,
        scheme.weights.symmetric,
        scheme.weights.per_channel,
        scheme.reduce_range,
        scheme.max_outlier_ratio,
        recipe.quantize_activation_products,
        extra_options=(("OpTypesToExcludeOutputQuantization", [op for op in _FLOAT_OUTPUT_OPS if op in ops]),),
    )
