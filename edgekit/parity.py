"""Compare two runners on the same real inputs, output by output, matched by name (a Polygraphy-style comparator)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np

from edgekit.catalog.schema import OutputTolerance, Tolerance
from edgekit.data import Dataset
from edgekit.runners.base import Runner


@dataclass
class OutputParity:
    name: str
    max_abs: float
    mean_abs: float
    cosine: float
    top1: float | None  # argmax agreement for class-score outputs
    passed: bool
    failures: list[str] = field(default_factory=list)


@dataclass
class ParityResult:
    """Truthy when at least one output was compared and every compared output is within tolerance."""

    outputs: list[OutputParity]
    samples: int
    inputs: str  # where the inputs came from: a data file, or "generated"
    tolerance: dict
    matched_by: Literal["name", "position"] = "name"
    warnings: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # failures that belong to no single output
    not_measured: str | None = None  # why parity could not be measured on this machine (the file cannot run here)
    ran_on: str | None = None  # the device the file ran on for parity (None: here)

    @property
    def passed(self) -> bool:
        return bool(self.outputs) and not self.problems and all(o.passed for o in self.outputs)

    def __bool__(self) -> bool:
        return self.passed

    def to_json(self) -> dict:
        return {
            "passed": self.passed,
            "samples": self.samples,
            "inputs": self.inputs,
            "matched_by": self.matched_by,
            "tolerance": self.tolerance,
            "outputs": [asdict(o) for o in self.outputs],
            "problems": self.problems,
            **({"not_measured": self.not_measured} if self.not_measured else {}),
            **({"ran_on": self.ran_on} if self.ran_on else {}),
        }

    def failures(self) -> list[str]:
        return self.problems + [f"{o.name}: {msg}" for o in self.outputs for msg in o.failures]


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 and nb == 0:
        return 1.0
    return float(a @ b / (na * nb)) if na and nb else 0.0


def is_class_scores(array: np.ndarray, role: str | None = None) -> bool:
    """Whether top-1 agreement applies: declared by the output's role, else (batch, classes) with classes > 1."""
    if role is not None:
        return role == "scores"
    return array.ndim == 2 and array.shape[-1] > 1


def compare_outputs(name: str, ref: np.ndarray, got: np.ndarray, tol: OutputTolerance, classes: bool) -> OutputParity:
    """Errors of `got` against `ref`; `classes` says whether top-1 applies."""
    ref, got = ref.astype(np.float64), got.astype(np.float64)
    if ref.shape != got.shape:
        return OutputParity(
            name,
            float("inf"),
            float("inf"),
            0.0,
            None,
            False,
            [f"shape {got.shape} differs from the source's {ref.shape}"],
        )
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


def _pairs(
    ref_names: list[str], got_names: list[str]
) -> tuple[list[tuple[str, str]], Literal["name", "position"], list[str]]:
    """(reference name, candidate name) pairs: by name where the candidate's names are the reference's,
    else by position (with a warning), as when a source leaves its outputs unnamed."""
    common = [n for n in got_names if n in ref_names]
    if common:
        missing = [n for n in ref_names if n not in got_names]
        warnings = (
            [f"parity: the exported file has no output named {', '.join(missing)}; compared {', '.join(common)} only"]
            if missing
            else []
        )
        return [(n, n) for n in common], "name", warnings
    pairs = list(zip(ref_names, got_names))
    warning = (
        (f"parity: output names differ ({', '.join(ref_names)} vs {', '.join(got_names)}); compared by position")
        if pairs
        else ""
    )
    return pairs, "position", [warning] if warning else []


def check_parity(
    reference: Runner,
    candidate: Runner,
    data: Dataset,
    batch_size: int,
    tol: Tolerance,
    roles: Mapping[str, str] | None = None,
) -> ParityResult:
    """Run both runners on every batch of `data`; compare concatenated outputs matched by name.

    Token outputs (batch, sequence, ...) are compared on real tokens only when the feed has an
    attention_mask: padded positions are ignored by every consumer and would only add noise.
    `roles` declares which outputs are class scores (top-1 applies); others are judged from their shape.
    """
    roles = roles or {}
    ref_out: dict[str, list[np.ndarray]] = {}
    got_out: dict[str, list[np.ndarray]] = {}
    for feed in data.batches(batch_size):
        for store, outputs in ((ref_out, reference.infer(feed, check=False)), (got_out, candidate.infer(feed))):
            for name, value in outputs.items():
                store.setdefault(name, []).append(value)
    pairs, matched_by, warnings = _pairs(list(ref_out), list(got_out))
    mask = data.arrays.get("attention_mask")
    results = []
    for ref_name, got_name in pairs:
        ref, got = np.concatenate(ref_out[ref_name]), np.concatenate(got_out[got_name])
        classes = is_class_scores(ref, roles.get(got_name))
        if mask is not None and ref.shape[:2] == mask.shape and got.shape == ref.shape:
            ref, got = ref[mask.astype(bool)], got[mask.astype(bool)]
        results.append(compare_outputs(got_name, ref, got, tol.for_output(got_name), classes))
    problems = (
        []
        if results
        else [
            f"no output was compared (source: {', '.join(ref_out) or 'none'}; "
            f"exported file: {', '.join(got_out) or 'none'})"
        ]
    )
    return ParityResult(results, len(data), data.source, tol.model_dump(), matched_by, warnings, problems)
