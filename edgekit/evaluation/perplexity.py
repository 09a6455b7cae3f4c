"""Sliding-window perplexity of a causal language model run through any Runner.

The texts are joined into one token stream; windows of the model's context length move by
`stride`, and each window scores only the tokens no earlier window scored, so every token is
predicted once with up to (context - stride) tokens of left context.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgekit.errors import UsageError
from edgekit.evaluation.metrics import perplexity, token_nll
from edgekit.runners.base import Runner


def stream_windows(ids: np.ndarray, context: int, stride: int):
    """Yield (window ids, first scored position) over the stream; positions before it are context only."""
    scored_until = 0
    for begin in range(0, max(len(ids) - 1, 1), stride):
        end = min(begin + context, len(ids))
        window = ids[begin:end]
        first = max(scored_until - begin, 1)  # position 0 has nothing to the left to predict it from
        yield window, first
        scored_until = end
        if end == len(ids):
            break


def evaluate_perplexity(
    runner: Runner, token_ids: np.ndarray, context: int, stride: int | None = None, pad_id: int = 0
) -> dict[str, Any]:
    """Perplexity of `runner` (inputs input_ids [+ attention_mask], output logits) on a token stream."""
    stride = stride or context // 2
    names = {s.name for s in runner.input_specs()}
    total, count = 0.0, 0
    predicted, actual = [], []  # each scored position's most likely next token, and the token that came
    for window, first in stream_windows(token_ids, context, stride):
        n = len(window)
        ids = np.full((1, context), pad_id, dtype=np.int64)
        ids[0, :n] = window
        feed = {"input_ids": ids}
        if "attention_mask" in names:
            mask = np.zeros((1, context), dtype=np.int64)
            mask[0, :n] = 1
            feed["attention_mask"] = mask
        name, logits = next(iter(runner.infer(feed).items()))
        logits = logits[0]
        _require_vocabulary(name, logits, window)
        # logits at position t predict the token at t+1
        nll = token_nll(logits[first - 1 : n - 1], window[first:n])
        total += float(nll.sum())
        count += n - first
        predicted.append(logits[first - 1 : n - 1].argmax(-1))
        actual.append(window[first:n])
    top1 = np.concatenate(predicted) if predicted else np.zeros(0, np.int64)
    scored = np.concatenate(actual) if actual else top1
    return {
        "perplexity": perplexity(total, count),
        "next_token_accuracy": round(float((top1 == scored).mean()), 6) if count else None,
        "tokens": count,
        "context_length": context,
        "stride": stride,
        PREDICTIONS: top1,  # not reported: evaluate compares them with the reference's (next_token_agreement)
    }


PREDICTIONS = "_predictions"


def _require_vocabulary(name: str, logits: np.ndarray, window: np.ndarray) -> None:
    """Refuse an output that cannot be next-token logits for these ids: one score per vocabulary entry is needed
    (a base model's hidden states have the right rank but hidden-size columns)."""
    if int(window.max()) >= logits.shape[-1]:
        raise UsageError(
            f"--metric perplexity needs next-token logits over the vocabulary; the model's first output '{name}' has "
            f"{logits.shape[-1]} values per token, and the tokenizer gives ids up to {int(window.max())}.",
            hint="Export the language model with its head (a causal-LM folder loads with it: its config's "
            "architectures name ...ForCausalLM), or give the tokenizer the model was trained with.",
        )
