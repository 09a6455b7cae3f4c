"""Compare two runners on the same real inputs, output by output (a Polygraphy-style comparator)."""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

import numpy as np

from edgekit.catalog.schema import Tolerance
from edgekit.data import Dataset
from edgekit.runners.base import Runner


@dataclass
class OutputParity:
    name: str
    max_abs: float
    mean_abs: float
    cosine: float
    top1: float | None  # argmax agreement for (batch, classes) outputs
    passed: bool
    failures: list[str] = field(default_factory=list)


@dataclass
class ParityResult:
    """Truthy when every output is within tolerance."""

    outputs: list[OutputParity]
    samples: int
    inputs: str  # where the inputs came from: a data file, or "generated"
    tolerance: dict

    @property
    def passed(self) -> bool:
        return all(o.passed for o in self.outputs)

    def __bool__(self) -> bool:
        return self.passed

    def to_json(self) -> dict:
        return {"passed": self.passed, "samples": self.samples, "inputs": self.inputs,
                "tolerance": self.tolerance, "outputs": [asdict(o) for o in self.outputs]}

    def failures(self) -> list[str]:
        return [f"{o.name}: {msg}" for o in self.outputs for msg in o.failures]


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 and nb == 0:
        return 1.0
    return float(a @ b / (na * nb)) if na and nb else 0.0


_EMBEDDING = re.compile(r"hidden|pool|embed|feature|state", re.IGNORECASE)


def is_class_scores(name: str, array: np.ndarray) -> bool:
    """Top-1 agreement means something for (batch, classes) outputs, not for embeddings."""
    return array.ndim == 2 and array.shape[-1] > 1 and not _EMBEDDING.search(name)


def compare_outputs(name: str, ref: np.ndarray, got: np.ndarray, tol: Tolerance, classes: bool | None = None) -> OutputParity:
    """Errors of `got` against `ref`; `classes` says whether top-1 applies (default: judged from name and shape)."""
    classes = is_class_scores(name, ref) if classes is None else classes
    ref, got = ref.astype(np.float64), got.astype(np.float64)
    if ref.shape != got.shape:
        return OutputParity(name, float("inf"), float("inf"), 0.0, None, False,
                            [f"shape {got.shape} differs from the source's {ref.shape}"])
    diff = np.abs(ref - got)
    cos = cosine(ref, got)
    top1 = float(np.mean(ref.argmax(-1) == got.argmax(-1))) if classes else None
    failures = []
    if cos < tol.cosine_min:
        failures.append(f"cosine {cos:.5f} < {tol.cosine_min} (short by {tol.cosine_min - cos:.5f})")
    if top1 is not None and top1 < tol.top1_min:
        failures.append(f"top-1 agreement {top1:.3f} < {tol.top1_min} (short by {tol.top1_min - top1:.3f})")
    if tol.max_abs is not None and diff.max() > tol.max_abs:
        failures.append(f"max abs error {diff.max():.3g} > {tol.max_abs}")
    return OutputParity(name, float(diff.max()), float(diff.mean()), cos, top1, not failures, failures)


def check_parity(reference: Runner, candidate: Runner, data: Dataset, batch_size: int, tol: Tolerance) -> ParityResult:
    """Run both runners on every batch of `data`; compare concatenated outputs by position.

    Token outputs (batch, sequence, ...) are compared on real tokens only when the feed has an
    attention_mask: padded positions are ignored by every consumer and would only add noise.
    """
    ref_out: list[list[np.ndarray]] = []
    got_out: list[list[np.ndarray]] = []
    for feed in data.batches(batch_size):
        ref_out.append(list(reference.infer(feed, check=False).values()))
        got_out.append(list(candidate.infer(feed).values()))
    mask = data.arrays.get("attention_mask")
    names = candidate.output_names()
    results = []
    for i, name in enumerate(names[:len(ref_out[0])]):
        ref = np.concatenate([r[i] for r in ref_out])
        got = np.concatenate([g[i] for g in got_out])
        classes = is_class_scores(name, ref)
        if mask is not None and ref.shape[:2] == mask.shape and got.shape == ref.shape:
            ref, got = ref[mask.astype(bool)], got[mask.astype(bool)]
        results.append(compare_outputs(name, ref, got, tol, classes))
    return ParityResult(results, len(data), data.source, tol.model_dump())
