"""Benchmark-worker loader for Core ML packages (self-contained: coremltools + numpy on a Mac).

Core ML predicts on macOS only: elsewhere load() refuses with the reason, which edgekit reports as a file that
cannot run on that device. The package names its compute units (edgekit stores them at export).
"""

import sys

META_COMPUTE_UNITS = "edgekit.compute_units"  # written at export (convert.py), read when loading
# edgekit's --compute-units -> coremltools.ComputeUnit; multiArrayType data types -> numpy names
UNITS = {"all": "ALL", "cpu_only": "CPU_ONLY", "cpu_and_gpu": "CPU_AND_GPU", "cpu_and_ne": "CPU_AND_NE"}
ARRAY_TYPES = {65552: "float16", 65568: "float32", 65600: "float64", 131104: "int32", 131080: "int8"}


def import_runtime():
    """coremltools, or None off macOS: Core ML cannot predict there, and importing coremltools (torch with it)
    took half a minute before load() could say so."""
    if sys.platform != "darwin":
        return None
    import coremltools

    return coremltools


def tensors(spec):
    """(name, dtype, shape) of the package's inputs, -1 for a flexible dim, and its output names."""
    specs = []
    for feature in spec.description.input:
        array = feature.type.multiArrayType
        ranges = list(array.shapeRange.sizeRanges)
        if ranges:
            shape = [int(r.lowerBound) if r.lowerBound == r.upperBound else -1 for r in ranges]
        else:
            shape = [int(d) for d in array.shape]
        specs.append((feature.name, ARRAY_TYPES.get(array.dataType, "float32"), shape))
    return specs, [feature.name for feature in spec.description.output]


def open_model(ct, path):
    """The package loaded by Core ML on the compute units it names; refused off macOS."""
    if sys.platform != "darwin":
        raise RuntimeError(f"Core ML packages run on macOS and iOS only; this device runs {sys.platform}")
    spec = ct.utils.load_spec(path)
    units = dict(spec.description.metadata.userDefined).get(META_COMPUTE_UNITS, "all")
    model = ct.models.MLModel(path, compute_units=getattr(ct.ComputeUnit, UNITS.get(units, "ALL")))
    return spec, model, units


def load(ct, path, threads, specs=None):
    """Core ML chooses its own threads; `threads` is recorded by the worker, not applied."""
    import numpy as np

    spec, model, units = open_model(ct, path)
    specs, outputs = tensors(spec)
    kinds = {name: dtype for name, dtype, _ in specs}

    def infer(feed):
        result = model.predict({k: np.ascontiguousarray(v, dtype=kinds.get(k, v.dtype)) for k, v in feed.items()})
        return [result[name] for name in outputs]

    return specs, infer, {"coremltools": ct.__version__, "coreml_compute_units": units}
