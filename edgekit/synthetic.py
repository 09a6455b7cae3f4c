"""The one rule for inventing input values when no real data is given (tracing, parity fallback, benchmarks).

Self-contained (standard library + numpy): the benchmark worker imports it on devices, beside worker.py.
"""

import numpy as np


def synthetic_array(name, dtype, shape, rng, vocab_size=None):
    """Plausible values for an input named `name`: normal floats, all-ones masks, zero token types,
    token ids below the vocabulary size (at most 1000)."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    if "mask" in name:
        return np.ones(shape, dtype)
    if "type" in name:
        return np.zeros(shape, dtype)
    if dtype.kind == "b":
        return rng.random(shape) > 0.5
    return rng.integers(0, min(vocab_size or 100, 1000), shape).astype(dtype)
