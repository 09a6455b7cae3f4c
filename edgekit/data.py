"""Read DATA (npz, or CSV/JSONL text through the model's tokenizer) into arrays named after model inputs.

Calibration, parity and evaluation all read data through here, so the same checks apply everywhere.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgekit.checksum import sha256_path
from edgekit.errors import DataError, require_file
from edgekit.spec import Signature, TensorSpec, np_dtype

TEXT_SUFFIXES = (".csv", ".jsonl")
CALIB_LIMIT = 256  # calibration samples used at most, whatever the runtime (export --calib-limit changes it)
CALIB_HINT = (
    "Pass --calib DATA: a .npz with arrays named after the model inputs, or a CSV/JSONL with a 'text' "
    "column for models with a tokenizer (a few hundred real samples)."
)


@dataclass
class Dataset:
    """Input arrays (axis 0 = samples) plus optional labels, with where they came from."""

    arrays: dict[str, np.ndarray]
    labels: np.ndarray | None
    source: str
    sha256: str

    def __len__(self) -> int:
        return len(next(iter(self.arrays.values())))

    def batches(self, batch_size: int) -> Iterator[dict[str, np.ndarray]]:
        for start in range(0, len(self), batch_size):
            yield {k: v[start : start + batch_size] for k, v in self.arrays.items()}

    def head(self, n: int) -> Dataset:
        labels = self.labels[:n] if self.labels is not None else None
        return Dataset({k: v[:n] for k, v in self.arrays.items()}, labels, self.source, self.sha256)

    def take(self, indices: np.ndarray, what: str) -> Dataset:
        """The samples at `indices`, named as `what` part of this set (its hash covers which ones)."""
        labels = self.labels[indices] if self.labels is not None else None
        digest = hashlib.sha256(self.sha256.encode() + np.asarray(indices, np.int64).tobytes()).hexdigest()
        return Dataset({k: v[indices] for k, v in self.arrays.items()}, labels, f"{self.source} ({what})", digest)


def batch_size_for(signature: Signature, default: int = 32) -> int:
    """The batch a feed must have: the static batch dim when all inputs fix one, else `default`."""
    firsts = {s.shape[0] for s in signature.inputs if s.shape}
    static = [d for d in firsts if isinstance(d, int)]
    return static[0] if static else default


def static_shapes(specs: tuple[TensorSpec, ...], data: Dataset | None) -> dict[str, tuple[int, ...]]:
    """Every dim fixed, for converters that need static graphs: a free batch becomes 1, other free dims
    take the data's sizes (or 1); dims the model already fixes stay."""
    shapes = {}
    for spec in specs:
        sample = data.arrays[spec.name].shape if data is not None and spec.name in data.arrays else None
        shapes[spec.name] = tuple(
            d if isinstance(d, int) else (1 if i == 0 or not sample else sample[i]) for i, d in enumerate(spec.shape)
        )
    return shapes


@dataclass(frozen=True)
class BuiltinDataset:
    """A dataset that ships with an installed package: `builtin:NAME:SPLIT` becomes a file through `materialize`."""

    name: str
    description: str
    materialize: Callable[[str, Signature], Path]  # (split, the model's signature) -> a DATA file


_BUILTIN: dict[str, BuiltinDataset] = {}
ENTRY_POINT_GROUP = "edgekit.datasets"  # packages register their datasets here (a callable taking no argument)


def register_dataset(dataset: BuiltinDataset) -> None:
    _BUILTIN[dataset.name] = dataset


def builtin_datasets() -> dict[str, BuiltinDataset]:
    """Every registered built-in dataset; installed packages register theirs through the entry point group."""
    from importlib.metadata import entry_points

    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if entry.name not in _LOADED_ENTRY_POINTS:
            _LOADED_ENTRY_POINTS.add(entry.name)
            entry.load()()
    return dict(_BUILTIN)


_LOADED_ENTRY_POINTS: set[str] = set()


def resolve_data(data: str | Path, signature: Signature) -> Path:
    """A DATA argument as a file: `builtin:NAME:SPLIT` is materialized by its dataset, anything else is a path."""
    text = str(data)
    if not text.startswith("builtin:"):
        return Path(text)
    parts = text.split(":")
    known = builtin_datasets()
    if len(parts) != 3 or parts[1] not in known:
        raise DataError(
            f"Cannot read the dataset name '{text}'.",
            hint=f"Write builtin:NAME:SPLIT with NAME one of {', '.join(known) or '(none installed)'} "
            "(see `edgekit datasets`).",
        )
    return known[parts[1]].materialize(parts[2], signature)


def read_data(
    path: str | Path, signature: Signature, tokenizer_dir: Path | None = None, limit: int | None = None
) -> Dataset:
    """Read a dataset file (or a `builtin:NAME:SPLIT`) and check it against the model's inputs."""
    path = resolve_data(path, signature)
    require_file(
        path,
        "Data file",
        DataError,
        hint="DATA is a .npz with arrays named after the model inputs, or a CSV/JSONL with a 'text' column.",
    )
    if path.suffix == ".npz":
        dataset = _read_npz(path, signature)
    elif path.suffix in TEXT_SUFFIXES:
        dataset = _read_text(path, signature, tokenizer_dir)
    else:
        raise DataError(f"Unknown data file type '{path.suffix}' ({path}).", hint="Use .npz, .csv or .jsonl.")
    if len(dataset) == 0:
        raise DataError(f"Data file {path} holds no samples.")
    return dataset.head(limit) if limit else dataset


def class_indices(labels: np.ndarray, path: str) -> np.ndarray:
    """`labels` as whole class indices (int64), for accuracy, F1 and training; float arrays of whole numbers are
    accepted as such. Calibration data may carry labels of any kind: only their users check them."""
    if labels.dtype.kind == "f":
        fractional = labels[labels != np.round(labels)]
        if fractional.size:
            raise DataError(
                f"{path}: 'labels' holds fractional values ({fractional.flat[0]:g}, {fractional.size} in all); "
                "accuracy and F1 need whole class indices.",
                hint="Store the class index of each sample (0, 1, 2, ...), not a score or a regression target.",
            )
    elif labels.dtype.kind not in "iub":
        raise DataError(f"{path}: 'labels' is of type {labels.dtype}; accuracy and F1 need whole class indices.")
    return labels.astype(np.int64)


def _read_npz(path: Path, signature: Signature) -> Dataset:
    try:
        with np.load(path, allow_pickle=False) as npz:
            stored = {k: npz[k] for k in npz.files}
    except Exception as e:
        raise DataError(f"Cannot read {path} as .npz: {e}") from None
    missing = [s.name for s in signature.inputs if s.name not in stored]
    if missing:
        raise DataError(
            f"{path} has no array for input(s) {', '.join(missing)}.",
            hint=f"Arrays must be named after the model inputs ({', '.join(signature.input_names)}); "
            f"the file has: {', '.join(stored) or 'none'}.",
        )
    arrays = {s.name: conform(s, stored[s.name], str(path)) for s in signature.inputs}
    counts = {k: len(v) for k, v in arrays.items()}
    if len(set(counts.values())) > 1:
        raise DataError(f"Arrays in {path} have different sample counts: {counts}.")
    for name, array in arrays.items():  # NaN/Inf would surface later as a parity failure or a silent metric
        if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
            bad = int((~np.isfinite(array)).reshape(len(array), -1).any(axis=1).sum())
            raise DataError(f"{path}: input '{name}' has NaN or Inf values in {bad} of {len(array)} samples.")
    labels = stored.get("labels")
    if labels is not None and labels.dtype.kind == "f" and not np.isfinite(labels).all():
        raise DataError(f"{path}: 'labels' has NaN or Inf values.")
    if labels is not None and len(labels) != len(next(iter(arrays.values()))):
        raise DataError(
            f"'labels' in {path} has {len(labels)} rows; the inputs have {len(next(iter(arrays.values())))}."
        )
    return Dataset(arrays, labels, str(path), sha256_path(path))


def conform(spec: TensorSpec, array: np.ndarray, where: str) -> np.ndarray:
    """Check an array against a spec (rank, static dims past the batch); cast within a dtype kind."""
    want = np_dtype(spec.dtype)
    if array.dtype != want:
        if array.dtype.kind == want.kind or (array.dtype.kind in "iu" and want.kind in "iu"):
            array = array.astype(want)
        else:
            raise DataError(f"Array '{spec.name}' in {where} is {array.dtype}; the model wants {spec.dtype}.")
    if array.ndim != len(spec.shape):
        raise DataError(
            f"Array '{spec.name}' in {where} has shape {array.shape}; the model input is "
            f"{'x'.join(map(str, spec.shape))} ({len(spec.shape)} dims, samples on axis 0)."
        )
    for i, (got, want_dim) in enumerate(zip(array.shape[1:], spec.shape[1:]), start=1):
        if isinstance(want_dim, int) and got != want_dim:
            raise DataError(
                f"Array '{spec.name}' in {where} has shape {array.shape}; dim {i} must be {want_dim} "
                f"(model input {'x'.join(map(str, spec.shape))})."
            )
    return array


def read_text_rows(path: Path) -> tuple[list[str], list]:
    """The 'text' and 'label' columns of a CSV or JSONL file."""
    texts, labels = [], []
    try:
        if path.suffix == ".csv":
            with path.open(newline="", encoding="utf-8", errors="replace") as f:
                rows = list(csv.DictReader(f))
        else:
            rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, ValueError, csv.Error) as e:  # ValueError: bad JSON, and bytes that are not UTF-8
        raise DataError(f"Cannot read {path}: {e}") from None
    for number, row in enumerate(rows, 1):
        if not isinstance(row, dict):
            raise DataError(
                f"{path}, row {number}: a {type(row).__name__}, not an object with a 'text' field.",
                hint='Each JSONL line is one object: {"text": "...", "label": 1}.',
            )
    if rows and "text" not in rows[0]:
        raise DataError(f"{path} has no 'text' column.", hint=f"Its columns: {', '.join(map(str, rows[0]))}.")
    for row in rows:
        texts.append(str(row["text"]))
        labels.append(row.get("label"))
    return texts, labels


# the files a Hugging Face tokenizer folder has (one of them at least); release bundles copy these
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "vocab.json",
                   "merges.txt", "spiece.model", "sentencepiece.bpe.model")  # fmt: skip


def check_tokenizer_dir(folder: Path) -> Path:
    """`folder`, when it is a folder with a Hugging Face tokenizer's files in it (else DataError, exit 2)."""
    if not Path(folder).is_dir():
        raise DataError(f"The tokenizer folder {folder} does not exist.", hint="--tokenizer takes a local folder.")
    if not any((Path(folder) / name).is_file() for name in TOKENIZER_FILES):
        raise DataError(
            f"{folder} holds no tokenizer: none of {', '.join(TOKENIZER_FILES)}.",
            hint="Point --tokenizer at the Hugging Face model folder the tokenizer was saved with.",
        )
    return Path(folder)


def load_tokenizer(folder: Path):
    """A Hugging Face tokenizer from a local folder (never the hub)."""
    from edgekit.sources.hf_source import transformers_offline

    check_tokenizer_dir(folder)
    transformers = transformers_offline("Tokenizing text data")
    return transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)


def tokenize(texts: list[str], signature: Signature, tokenizer_dir: Path) -> dict[str, np.ndarray]:
    """Tokenize with the model's own tokenizer, padded to the model's (or DEFAULT_SEQUENCE) sequence length."""
    from edgekit.sources.hf_source import DEFAULT_SEQUENCE

    tokenizer = load_tokenizer(tokenizer_dir)
    seq_dims = [s.shape[1] for s in signature.inputs if len(s.shape) > 1 and isinstance(s.shape[1], int)]
    length = seq_dims[0] if seq_dims else DEFAULT_SEQUENCE
    encoded = tokenizer(texts, padding="max_length", truncation=True, max_length=length, return_tensors="np")
    arrays = {}
    for spec in signature.inputs:
        if spec.name not in encoded:
            raise DataError(f"The tokenizer gives {', '.join(encoded)}, not the model input '{spec.name}'.")
        arrays[spec.name] = encoded[spec.name].astype(np_dtype(spec.dtype))
    return arrays


def _read_text(path: Path, signature: Signature, tokenizer_dir: Path | None) -> Dataset:
    if tokenizer_dir is None:
        raise DataError(
            f"{path} holds text, but this model has no tokenizer.",
            hint="Text data needs a Hugging Face model folder with its tokenizer, or pass --tokenizer DIR; "
            "otherwise give a .npz with arrays named after the model inputs.",
        )
    texts, raw_labels = read_text_rows(path)
    if not texts:
        raise DataError(f"Data file {path} holds no samples.")
    arrays = tokenize(texts, signature, tokenizer_dir)
    labels = None
    if all(label is not None and str(label).strip() != "" for label in raw_labels):
        try:
            labels = np.array([int(label) for label in raw_labels])
        except ValueError:
            names = sorted({str(label) for label in raw_labels})
            labels = np.array([names.index(str(label)) for label in raw_labels])
    return Dataset(arrays, labels, str(path), sha256_path(path))


def generated_inputs(signature: Signature, n: int = 8, vocab_size: int | None = None, seed: int = 0) -> Dataset:
    """Synthetic inputs for when no data is given (parity then says it used generated inputs)."""
    from edgekit.synthetic import synthetic_array

    rng = np.random.default_rng(seed)
    arrays = {}
    for spec in signature.inputs:
        shape = (n, *spec.concrete_shape({}, default=16)[1:]) if spec.shape else (n,)
        arrays[spec.name] = synthetic_array(spec.name, np_dtype(spec.dtype), shape, rng, vocab_size)
    return Dataset(arrays, None, "generated", "")
