"""edgekit: take trained models to edge devices and prove they still work there.

The public API mirrors the CLI. Importing edgekit imports nothing heavy: each function imports
its backend when called.
"""
from __future__ import annotations

__version__ = "0.1.0"


def export(*args, **kwargs):
    """Export a model to a target; see edgekit.exporter.export."""
    from edgekit.exporter import export as _export

    return _export(*args, **kwargs)


def evaluate(*args, **kwargs):
    """Task metrics of an exported file run in its own runtime; see edgekit.evaluate.evaluate."""
    from edgekit.evaluate import evaluate as _evaluate

    return _evaluate(*args, **kwargs)


def benchmark(*args, **kwargs):
    """Latency, memory and throughput in fresh processes; see edgekit.bench.harness.benchmark."""
    from edgekit.bench.harness import benchmark as _benchmark

    return _benchmark(*args, **kwargs)


def targets():
    """Every target in the catalog, by name."""
    from edgekit.catalog import targets as _targets

    return _targets()


def load(*args, **kwargs):
    """Load a source model; see edgekit.models.load."""
    from edgekit.models import load as _load

    return _load(*args, **kwargs)


__all__ = ["__version__", "benchmark", "evaluate", "export", "load", "targets"]
