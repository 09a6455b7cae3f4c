"""Task metrics, computed with scikit-learn (classification) and from token NLL (perplexity)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from edgekit._lazy import require
from edgekit.errors import DataError


def classification_metrics(
    logits: np.ndarray, labels: np.ndarray, class_names: list[str] | None = None
) -> dict[str, Any]:
    """Accuracy, F1 (macro, micro, and binary for 2 classes), per-class precision/recall, confusion matrix."""
    metrics = require("sklearn.metrics", "Classification metrics")
    n_classes = logits.shape[-1]
    if labels.min() < 0 or labels.max() >= n_classes:
        raise DataError(
            f"The labels hold {len(np.unique(labels))} classes (values {labels.min()}..{labels.max()}), "
            f"but the model outputs {n_classes} scores per sample.",
            hint="Labels must be integers 0..N-1 for a model with N outputs.",
        )
    predictions = logits.argmax(-1)
    classes = list(range(n_classes))
    precision, recall, f1, support = metrics.precision_recall_fscore_support(
        labels, predictions, labels=classes, zero_division=0
    )
    names = class_names or [str(c) for c in classes]
    out: dict[str, Any] = {
        "accuracy": float(metrics.accuracy_score(labels, predictions)),
        "f1_macro": float(metrics.f1_score(labels, predictions, average="macro", labels=classes, zero_division=0)),
        "f1_micro": float(metrics.f1_score(labels, predictions, average="micro", labels=classes, zero_division=0)),
        "per_class": {
            names[c]: {
                "precision": float(precision[c]),
                "recall": float(recall[c]),
                "f1": float(f1[c]),
                "support": int(support[c]),
            }
            for c in classes
        },
        "confusion_matrix": metrics.confusion_matrix(labels, predictions, labels=classes).tolist(),
        "samples": len(labels),
    }
    if n_classes == 2:
        out["f1_binary"] = float(metrics.f1_score(labels, predictions, average="binary", pos_label=1, zero_division=0))
    return out


def token_nll(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Negative log-likelihood of each target token under softmax(logits), computed stably in float64."""
    logits = logits.astype(np.float64)
    shifted = logits - logits.max(-1, keepdims=True)
    log_z = np.log(np.exp(shifted).sum(-1))
    picked = np.take_along_axis(shifted, targets[..., None], axis=-1)[..., 0]
    return log_z - picked


def perplexity(total_nll: float, tokens: int) -> float:
    if tokens == 0:
        raise DataError("No tokens were scored for perplexity: the texts are shorter than two tokens.")
    return math.exp(total_nll / tokens)
