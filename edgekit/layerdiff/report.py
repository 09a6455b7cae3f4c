"""The result of `edgekit diff`: one row per reference layer, in execution order, and the first that diverges."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from edgekit.layerdiff.match import Match
from edgekit.layerdiff.metrics import ErrorSums, LayerError

METRICS = ("snr", "cosine", "max-abs")
# a layer diverges below these (snr: dB, cosine); max-abs: when any element is beyond atol + rtol * |reference|
SNR_DB, COSINE = 20.0, 0.99
DEFAULT_THRESHOLDS: dict[str, float | None] = {"snr": SNR_DB, "cosine": COSINE, "max-abs": None}


def _num(x: float) -> float | None:
    """JSON has no infinity: an exact match's SNR is reported as null."""
    return None if math.isinf(x) or math.isnan(x) else float(f"{x:.6g}")


@dataclass
class LayerDiff:
    layer: str  # the reference's layer name
    kind: str
    tensors: list[str] = field(default_factory=list)  # the artifact's (input, output) tensors
    artifact_layer: str | None = None
    artifact_kind: str | None = None
    quantization: str | None = None  # how the artifact computes this layer
    weight_cosine: float | None = None
    folded_scale: float | None = None  # a constant the file's float output carries (a converter's fold): divided out
    metrics: dict[str, float | int | None] = field(default_factory=dict)
    input_relative_error: float | None = None
    added_error: float | None = None  # the relative error this layer adds beyond its input's
    passed: bool | None = None  # None: not compared
    unmatched: str | None = None  # why it was not compared

    @property
    def compared(self) -> bool:
        return self.passed is not None

    @classmethod
    def of(cls, m: Match, error: LayerError | None, misfit: str | None, metric: str, threshold) -> LayerDiff:
        row = cls(m.reference.name, m.reference.kind)
        if m.artifact is None:
            row.unmatched = "no layer of the artifact has its weights"
            return row
        a = m.artifact
        row.tensors, row.artifact_layer, row.artifact_kind = list(a.tensors), a.name, a.kind
        row.quantization, row.weight_cosine = a.quantization, m.cosine
        if misfit or error is None or error.output.elements == 0:
            row.unmatched = misfit or "not run"
            return row
        out = error.output
        row.folded_scale = None if error.scale is None else float(f"{error.scale:.6g}")
        row.metrics = {
            "snr_db": _num(out.snr_db),
            "median_channel_snr_db": None if out.median_channel_snr_db is None else _num(out.median_channel_snr_db),
            "cosine": _num(out.cosine),
            "max_abs": _num(out.max_abs),
            "relative_error": _num(out.relative_error),
            "over_tolerance": out.over_tolerance,
        }
        if error.input.elements:
            row.input_relative_error = _num(error.input.relative_error)
            row.added_error = _num(error.added_error)
        row.passed = within(out, metric, threshold)
        return row


def within(out: ErrorSums, metric: str, threshold: float | None) -> bool:
    """Whether an output's error is within the tolerance of `metric`."""
    if metric == "snr":  # the whole output's, and its median channel's (an outlier channel hides the others)
        worst = min(out.snr_db, out.median_channel_snr_db if out.median_channel_snr_db is not None else math.inf)
        return worst >= (threshold if threshold is not None else SNR_DB)
    if metric == "cosine":
        return out.cosine >= (threshold if threshold is not None else COSINE)
    return out.over_tolerance == 0


@dataclass
class DiffReport:
    artifact: str
    reference: str
    runtime: str
    reference_runtime: str
    samples: int
    metric: str
    threshold: float | None
    atol: float
    rtol: float
    layers: list[LayerDiff]
    unmatched_artifact_layers: list[str]
    notes: list[str]
    reduced: dict[str, Any] | None = None  # --reduce: the smallest diverging piece written

    @property
    def first_divergent(self) -> LayerDiff | None:
        return next((r for r in self.layers if r.passed is False), None)

    @property
    def worst_added(self) -> LayerDiff | None:
        """The layer that adds the most error (where the fault most likely is when errors pile up)."""
        rows = [r for r in self.layers if r.added_error is not None]
        return max(rows, key=lambda r: r.added_error or 0.0) if rows else None

    @property
    def coverage(self) -> float:
        """The share of the reference's weighted layers compared."""
        return sum(r.compared for r in self.layers) / len(self.layers) if self.layers else 0.0

    @property
    def matched(self) -> float:
        """The share of the reference's weighted layers whose weights the file holds (compared or not)."""
        return sum(r.artifact_layer is not None for r in self.layers) / len(self.layers) if self.layers else 0.0

    def to_json(self) -> dict[str, Any]:
        first, worst = self.first_divergent, self.worst_added
        return {
            "schema_version": "1",
            "artifact": self.artifact,
            "reference": self.reference,
            "runtime": self.runtime,
            "reference_runtime": self.reference_runtime,
            "samples": self.samples,
            "metric": self.metric,
            "threshold": self.threshold,
            "atol": self.atol,
            "rtol": self.rtol,
            "first_divergent": first.layer if first else None,
            "most_added_error": worst.layer if worst else None,
            "coverage": round(self.coverage, 4),
            "matched": round(self.matched, 4),
            "layers": [{k: v for k, v in vars(r).items() if not (k == "unmatched" and v is None)} for r in self.layers],
            "unmatched_artifact_layers": self.unmatched_artifact_layers,
            "notes": self.notes,
            "reduced": self.reduced,
        }
