"""Quantizers: one per runtime. The table maps (artifact format, target quantization) to the function.

Each function is quantize(src_float_file, dst_file, recipe, calibration_dataset, batch_size) -> dict of notes
(batch_size: the batch each calibration feed must have).
"""
from __future__ import annotations

QUANTIZERS: dict[tuple[str, str], str] = {
    ("onnx", "fp16"): "edgekit.quantize.onnx_quant:to_fp16",
    ("onnx", "dynamic"): "edgekit.quantize.onnx_quant:dynamic_int8",
    ("onnx", "static"): "edgekit.quantize.onnx_quant:static_int8",
}


def supports(fmt: str, quantization: str) -> bool:
    """Whether edgekit can apply `quantization` to `fmt`: nothing to do, a quantizer after conversion,
    or a converter that quantizes before converting (PyTorch Mobile)."""
    from edgekit.route import quantized_in_route

    return quantization == "none" or (fmt, quantization) in QUANTIZERS or quantized_in_route(fmt, quantization)
