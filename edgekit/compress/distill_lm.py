"""Distillation of a causal language model: at every position of a text the student learns the teacher's
next-token distribution and, with α > 0, the token that follows:

loss = α·CE(student, next token) + (1−α)·T²·KL(softmax(teacher/T) ‖ softmax(student/T)), both averaged over the
positions that have a next token (padding masked). A vocabulary's logits at every position are too large to
cache (1000 tweets x 128 positions x 30522 tokens: 16 GB), so the teacher runs beside the student, batch by batch.
Validation reports the loss and the student's perplexity on the held-out texts; the loss decides when to stop.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from edgekit.compress.common import Checkpoints, Trained, TrainSettings, distillation_loss, train_epochs
from edgekit.data import Dataset
from edgekit.progress import Progress
from edgekit.sources.base import Model
from edgekit.sources.hf_source import is_causal_lm


def is_lm(model: Model) -> bool:
    """Whether a loaded source is a Hugging Face causal LM (its config names a ...ForCausalLM head)."""
    config = getattr(getattr(model.obj, "model", None), "config", None)
    return model.kind == "hf" and config is not None and is_causal_lm(config.to_dict())


def _logits(model: Model, data: Dataset, idx: np.ndarray):
    """The next-token logits a causal LM gives at every position of these samples (batch, positions, vocab)."""
    import torch

    ids = torch.from_numpy(np.ascontiguousarray(data.arrays["input_ids"][idx]))
    mask = data.arrays.get("attention_mask")
    mask = torch.from_numpy(np.ascontiguousarray(mask[idx])) if mask is not None else None
    return model.obj.model(input_ids=ids, attention_mask=mask).logits, ids, mask


def _scored(ids, mask):
    """The positions that have a next token to score (padding is not one): position i predicts token i + 1."""
    return (mask[:, 1:] if mask is not None else ids[:, 1:].new_ones(ids[:, 1:].shape)).bool()


def lm_loss(student, teacher, ids, mask, alpha: float, temperature: float):
    """The loss above on torch tensors: logits (batch, positions, vocab), token ids and mask (batch, positions);
    position i is scored against token i + 1."""
    scored = _scored(ids, mask)
    # each scored position is one sample of the classifier's loss: its logits, the teacher's, the next token
    return distillation_loss(student[:, :-1][scored], teacher[:, :-1][scored], ids[:, 1:][scored], alpha, temperature)


def train_lm(
    student: Model,
    teacher: Model,
    train: Dataset,
    validation: Dataset | None,
    alpha: float,
    temperature: float,
    settings: TrainSettings,
    checkpoints: Checkpoints,
    resume: bool,
    progress: Progress,
) -> Trained:
    """Train the student on the teacher's next-token distributions, the teacher running beside it."""
    import torch

    module = student.obj
    teacher.obj.model.eval()
    torch.manual_seed(settings.seed)
    optimizer = torch.optim.AdamW(module.parameters(), lr=settings.rate)

    def step(idx: np.ndarray):
        with torch.no_grad():
            soft = _logits(teacher, train, idx)[0]
        logits, ids, mask = _logits(student, train, idx)
        return lm_loss(logits, soft, ids, mask, alpha, temperature)

    def validate() -> dict[str, float] | None:
        return lm_scores(student, validation, teacher, alpha, temperature) if validation is not None else None

    return train_epochs(
        module, optimizer, step, train, settings, checkpoints, resume, progress, "distill", validate=validate
    )


def lm_scores(
    model: Model, data: Dataset, teacher: Model | None = None, alpha: float = 1.0, temperature: float = 1.0
) -> dict[str, float]:
    """Perplexity over the texts' next tokens and, with a teacher, the distillation loss on them."""
    import torch
    import torch.nn.functional as F

    nll = tokens = loss = 0.0
    with torch.no_grad():
        for start in range(0, len(data), 32):
            idx = np.arange(start, min(start + 32, len(data)))
            logits, ids, mask = _logits(model, data, idx)
            scored = _scored(ids, mask)
            nll += float(F.cross_entropy(logits[:, :-1][scored], ids[:, 1:][scored], reduction="sum"))
            tokens += int(scored.sum())
            if teacher is not None:
                soft = _logits(teacher, data, idx)[0]
                loss += float(lm_loss(logits, soft, ids, mask, alpha, temperature)) * len(idx)
    scores: dict[str, Any] = {"perplexity": round(math.exp(nll / max(tokens, 1)), 3)}
    return {"loss": round(loss / len(data), 6), **scores} if teacher is not None else scores
