"""Weight compression of a converted Core ML package with coremltools.optimize.coreml: int8 linear weights
(coreml-int8) or an n-bit lookup table per weight (coreml-palettized); activations stay float. Each compressed
weight is decompressed again and compared with the float one: what is checked where Core ML cannot run."""

from __future__ import annotations

from typing import Any

import numpy as np

from edgekit._lazy import require
from edgekit.backends.base import StepContext, StepNotes
from edgekit.backends.coreml.convert import check_saved
from edgekit.backends.coreml.options import CoreMLOptions
from edgekit.backends.coreml.stack import coremltools
from edgekit.errors import ConversionError, UsageError, first_line
from edgekit.quiet import quiet


def int8_weights(ctx: StepContext) -> StepNotes:
    """Symmetric int8 weights, one scale per output channel (OpLinearQuantizerConfig)."""
    ct = coremltools("Quantizing a Core ML package")
    options = _options(ctx)
    config = ct.optimize.coreml.OpLinearQuantizerConfig(
        mode="linear_symmetric", dtype="int8", granularity="per_channel", weight_threshold=options.weight_threshold
    )
    settings = {"mode": "linear_symmetric", "dtype": "int8", "granularity": "per_channel"}
    return _compress(ctx, "linear_quantize_weights", config, settings, "weight-only")


def palettized_weights(ctx: StepContext) -> StepNotes:
    """Each weight as n-bit indices into a lookup table of 2^n values (OpPalettizerConfig, k-means by default)."""
    ct = coremltools("Palettizing a Core ML package")
    options = _options(ctx)
    mode = options.palettize_mode
    if mode.lower() == "custom":
        raise UsageError("--palettize-mode custom needs a lookup-table function, which edgekit does not take.",
                         hint="Use kmeans, uniform or unique.")  # fmt: skip
    if mode.lower() == "kmeans":
        require("sklearn", "Palettizing with k-means (coremltools clusters with scikit-learn)")
    try:
        config = ct.optimize.coreml.OpPalettizerConfig(
            mode=mode, nbits=options.palettize_bits, weight_threshold=options.weight_threshold
        )
    except (ValueError, TypeError) as e:
        raise UsageError(
            f"coremltools {ct.__version__} has no palettization mode '{mode}' (--palettize-mode): {first_line(e)}",
            hint="Its modes edgekit takes: kmeans, uniform, unique.",
        ) from None
    settings = {"mode": mode, "nbits": options.palettize_bits}
    return _compress(ctx, "palettize_weights", config, settings, "palettized")


def _options(ctx: StepContext) -> CoreMLOptions:
    options = ctx.options
    assert isinstance(options, CoreMLOptions)  # the registry resolved this backend's own model
    return options


# the ops whose constants are a layer's weights: only these are compressed. A constant an elementwise op reads is
# not one (a BERT's position embeddings folded for a fixed length: one scale for a 128x384 table with outliers
# lost 18 % of it in int8)
WEIGHT_OPS = ("linear", "matmul", "conv", "conv_transpose", "gather", "embedding")


def _compress(ctx: StepContext, method: str, op_config: Any, settings: dict, applied: str) -> StepNotes:
    """`method` of coremltools.optimize.coreml on the float package, saved, read back and its weights checked."""
    ct = coremltools("Compressing a Core ML package")
    optimize = ct.optimize.coreml
    float_model = ct.models.MLModel(str(ctx.src_file), skip_model_load=True)
    try:
        with quiet():
            config = optimize.OptimizationConfig(op_type_configs={op: op_config for op in WEIGHT_OPS})
            compressed = getattr(optimize, method)(float_model, config)
            compressed.save(str(ctx.out))
    except Exception as e:  # coremltools' own words: e.g. a deployment target older than iOS16
        raise ConversionError(f"coremltools.optimize.coreml.{method} failed: {first_line(e, 400)}") from None
    return StepNotes(
        {
            "method": f"coremltools.optimize.coreml.{method}",
            **settings,
            "weight_threshold": _options(ctx).weight_threshold,
            "weight_ops": list(WEIGHT_OPS),
            "weights_checked": weight_error(ct, float_model, ct.models.MLModel(str(ctx.out), skip_model_load=True)),
            **check_saved(ctx),
        },
        applied=applied,
    )


def weight_error(ct: Any, before: Any, after: Any) -> dict[str, Any]:
    """Every weight the compression changed, decompressed and compared with its float value (matched by the op
    that reads it and the argument it fills): how many, and the worst relative error and cosine among them."""
    optimize = ct.optimize.coreml
    with quiet():
        float_weights = _by_use(optimize.get_weights_metadata(before, weight_threshold=0))
        restored = _by_use(optimize.get_weights_metadata(optimize.decompress_weights(after), weight_threshold=0))
    errors, cosines = [], []
    for use, (name, value) in restored.items():
        original = float_weights.get(use)
        if original is None or original[0] == name:  # the same const as before: not compressed
            continue
        a, b = original[1].astype(np.float64).ravel(), value.astype(np.float64).ravel()
        if a.shape != b.shape:
            raise ConversionError(f"The compressed weight {name} has {b.size} values, its float one {a.size}.")
        norm = float(np.linalg.norm(a))
        errors.append(float(np.linalg.norm(a - b)) / norm if norm else 0.0)
        denominator = norm * float(np.linalg.norm(b))
        cosines.append(float(a @ b) / denominator if denominator else 1.0)
    if not errors:
        return {"compressed": 0, "note": "no weight reached the threshold: nothing was compressed"}
    return {
        "compressed": len(errors),
        "max_relative_error": round(max(errors), 6),
        "mean_relative_error": round(float(np.mean(errors)), 6),
        "min_cosine": round(min(cosines), 6),
    }


def _by_use(metadata: dict[str, Any]) -> dict[tuple[str, str], tuple[str, np.ndarray]]:
    """Float-valued weights keyed by (the op that reads one, the argument it fills), with their name and value."""
    out = {}
    for name, meta in metadata.items():
        if not np.issubdtype(np.asarray(meta.val).dtype, np.floating):
            continue
        for child in meta.child_ops:
            for argument, given in child.params_name_mapping.items():
                if given == name:
                    out[child.name, argument] = (name, np.asarray(meta.val))
    return out
