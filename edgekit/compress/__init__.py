"""Compression before export: knowledge distillation, pruning (weights, units, vocabulary), low-rank
factorization, quantization-aware training.

Each writes a folder that is itself a SOURCE (`edgekit export OUT --target T`), with a compress.json the
export sidecar carries as provenance. Heavy frameworks are imported when a method runs.
"""

from __future__ import annotations

from edgekit.compress.common import CompressResult, TrainSettings
from edgekit.compress.distill import distill, distillation_loss
from edgekit.compress.lowrank import lowrank
from edgekit.compress.prune import prune
from edgekit.compress.qat import qat
from edgekit.compress.vocab import prune_vocabulary

__all__ = [
    "CompressResult",
    "TrainSettings",
    "distill",
    "distillation_loss",
    "lowrank",
    "prune",
    "prune_vocabulary",
    "qat",
]
