"""The per-layer float fallback: quantize, check the gate, and when it fails keep the most sensitive
layers in float, one group at a time, until it passes.

The gate is parity against the source (the target's tolerances) and, with `eval_data` and `max_drop`,
the accuracy/macro-F1 drop of the file run in its own runtime. Groups grow 1, 1, 2, 4, ... layers in
sensitivity order, so a model with one bad layer keeps exactly that one; when a larger group passes,
a bisection between it and the last failure finds the fewest layers (in that order) that pass.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edgekit.catalog.schema import Target

from edgekit.backends.registry import backend_for_file
from edgekit.data import Dataset, batch_size_for
from edgekit.dispatch import open_runner, source_runner
from edgekit.errors import GateError
from edgekit.parity import ParityResult, check_parity
from edgekit.progress import Progress
from edgekit.runners.base import RecordingRunner, Runner
from edgekit.sensitivity import LayerSensitivity
from edgekit.sidecar import ArtifactIO
from edgekit.sources.base import Model


@dataclass(frozen=True)
class FallbackOptions:
    """What the user asked of the fallback and its gate (export's --no-fallback, --keep-float, --keep-sensitive,
    --report-sensitivity, --eval, --max-drop, --run-on)."""

    enabled: bool = True
    keep_float: tuple[str, ...] = ()  # layer names or globs pinned to float by hand
    keep_sensitive: int = 0  # the most sensitive layers (the fallback's order) pinned float from the first attempt
    report_sensitivity: bool = False  # measure (and record) the table even when the gate passes first time
    eval_data: str | Path | None = None  # task data for the accuracy gate
    max_drop: float | None = None  # points of accuracy / macro-F1 the file may lose against the source
    # where the gate runs the file: here, or on a device (ssh://user@host[:port], reached with edgekit.transport's
    # options): a Core ML package's parity measured on a Mac from Linux
    run_on: str = "local"
    run_on_options: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class Verdict:
    """One attempt's gate result."""

    kept: tuple[str, ...]
    parity_passed: bool
    parity_failures: list[str]
    evaluation: dict[str, Any] | None = None  # the eval gate's report (metrics, reference, drop, failures)
    summary: dict[str, Any] = field(default_factory=dict)  # top-1 / cosine / drop figures for the record
    loads: bool = True  # False: the runtime could not load the file made with these layers float

    @classmethod
    def unloadable(cls, kept: tuple[str, ...], reason: str) -> Verdict:
        """An attempt whose file the runtime refused to load (an OpenVINO CPU plugin that cannot compile an int8
        IR with a given layer float): a failure the search steps around, not the end of the export."""
        failure = f"the runtime cannot load the file with these layers float: {reason}"
        return cls(kept, False, [failure], summary={"loads": False, "layers": list(kept)}, loads=False)

    @property
    def passed(self) -> bool:
        return self.parity_passed and not (self.evaluation or {}).get("failures")

    def failures(self) -> list[str]:
        return self.parity_failures + list((self.evaluation or {}).get("failures", []))

    def to_json(self) -> dict[str, Any]:
        return {"float_layers": len(self.kept), "passed": self.passed, **self.summary}


def rank(table: list[LayerSensitivity], max_outlier_ratio: float | None) -> list[LayerSensitivity]:
    """Fallback order: layers whose input has outliers beyond the scheme's ratio first, then by error."""
    limit = max_outlier_ratio or float("inf")
    return sorted(table, key=lambda s: (s.outlier_ratio > limit, s.error), reverse=True)


def groups(order: list[str]) -> Iterator[list[str]]:
    """Cumulative prefixes of `order` growing 1, 2, 3, 5, 9, ... layers, ending with all of them."""
    size, step = 0, 1
    while size < len(order):
        size = min(len(order), size + step)
        yield order[:size]
        step = step * 2 if size >= 2 else 1


def search(
    attempt: Callable[[tuple[str, ...]], Verdict],
    pinned: tuple[str, ...],
    order: Callable[[], list[str]],
    first: Verdict,
    on_try: Callable[[int], None] = lambda n: None,
    last_resort: tuple[str, ...] = (),
) -> tuple[Verdict, list[Verdict]]:
    """Keep more layers float until `attempt` passes; returns the passing verdict and every verdict tried.

    order: the layers in fallback order (measured only when the first attempt failed). last_resort: groups of
    ops that are not layers (ONNX Runtime's quantized pooling, activations and embedding lookups), kept float
    only when every layer float fails; the layers are then searched again with them float. Raises GateError
    when every layer (and each last-resort group) is float and the gate still fails, with that file's figures.
    """
    tried = [first]
    verdict = first
    ranked = [name for name in order() if name not in pinned and name not in last_resort]

    def keep(n: int) -> Verdict:
        on_try(len(pinned) + n)
        v = attempt(pinned + tuple(ranked[:n]))
        tried.append(v)
        return v

    failed = 0  # the largest prefix known to fail (none kept: the first attempt)
    sizes = [len(g) for g in groups(ranked)]
    while sizes:
        size = sizes.pop(0)
        verdict = keep(size)
        if not verdict.loads:  # keeping these float broke the file: they stay quantized, the search goes on
            del ranked[failed:size]
            sizes = [len(g) for g in groups(ranked) if len(g) > failed]
            continue
        if not verdict.passed:
            failed = size
            continue
        # the group that passed may hold more than it takes: bisect between the last failure and it
        passed, best = size, verdict
        while passed - failed > 1:
            middle = (passed + failed) // 2
            verdict = keep(middle)
            if verdict.passed:
                passed, best = middle, verdict
            else:
                failed = middle
        return best, tried
    extra = tuple(g for g in last_resort if g not in pinned)
    if extra:  # every layer float fails: is it the other ops? Everything float first, to refuse without a search
        everything = pinned + extra + tuple(ranked)
        on_try(len(everything))
        tried.append(attempt(everything))
        if tried[-1].passed:
            on_try(len(pinned) + len(extra))
            again = attempt(pinned + extra)
            if again.passed:
                return again, [*tried, again]
            known = {everything: tried[-1]}
            best, more = search(lambda k: known.get(k) or attempt(k), pinned + extra, lambda: ranked, again, on_try)
            return best, tried + more
        verdict = tried[-1]
    layers = len([p for p in pinned if p not in last_resort]) + len(ranked)
    raise GateError(
        f"No float fallback meets the gate: with all {layers} quantizable layers"
        f"{' and the ' + ', '.join(last_resort) if last_resort else ''} kept float the file still fails: "
        f"{'; '.join(verdict.failures())}.",
        hint="The loss is not in the quantized layers (compare the float target of this runtime), or the gate "
        "is tighter than the runtime's float arithmetic allows: loosen --max-drop or the target's tolerances.",
    )


class Gate:
    """Parity against the source and, when asked, the accuracy drop on task data: what every attempt must pass.

    The source's own metrics are computed once and reused across the fallback's attempts.
    """

    def __init__(self, model: Model, tgt: Target, data: Dataset, options: FallbackOptions, progress: Progress):
        self.model, self.tgt, self.data, self.options, self.progress = model, tgt, data, options, progress
        self.parities: list[ParityResult] = []
        self.tried: list[Verdict] = []
        self._reference: tuple[dict[str, Any], Any] | None = None
        self._source = RecordingRunner(source_runner(model))  # the source runs on the parity data once

    def judge(self, artifact: Path, io: ArtifactIO, kept: tuple[str, ...]) -> Verdict:
        here = self.options.run_on == "local"
        elsewhere = backend_for_file(artifact).cannot_run_here() if here else None
        if elsewhere is not None:  # the file cannot run on this machine (Core ML off macOS): no parity, and said so
            return self._not_measured(kept, elsewhere)
        batch = batch_size_for(self.model.signature, default=32)
        label = f"parity on {len(self.data)} samples ({self.data.source}){'' if here else ' on ' + self.options.run_on}"
        with self.progress.step(label), self._source as ref, self._runner(artifact, io) as got:
            parity = check_parity(ref, got, self.data, batch, self.tgt.parity, roles=io.roles())
        parity.ran_on = None if here else self.options.run_on
        self.parities.append(parity)
        first = parity.outputs[0] if parity.outputs else None
        summary: dict[str, Any] = {"cosine": round(first.cosine, 5)} if first else {}
        if first and first.top1 is not None:
            summary["top1_agreement"] = round(first.top1, 4)
        verdict = Verdict(kept, parity.passed, parity.failures(), summary=summary)
        if parity.passed:  # cheap check first: a file that fails parity fails the gate whatever its accuracy
            self.evaluate(verdict, artifact, io)
        elif self._evaluates:
            summary["evaluated"] = False
        self.tried.append(verdict)
        return verdict

    def _runner(self, artifact: Path, io: ArtifactIO) -> Runner:
        """The file's runner: here, or edgekit's worker running it on the device the export names (--run-on)."""
        if self.options.run_on == "local":
            return open_runner(artifact, io)
        from edgekit.bench.remote import RemoteRunner

        return RemoteRunner(artifact, self.options.run_on, self.options.run_on_options, io)

    def _not_measured(self, kept: tuple[str, ...], why: str) -> Verdict:
        """A verdict that publishes the file with no parity measured, the reason in the sidecar and on screen."""
        warning = f"parity was not measured: {why}"
        self.progress.warn(warning)
        tolerance = self.tgt.parity.model_dump()
        self.parities.append(ParityResult([], 0, self.data.source, tolerance, warnings=[warning], not_measured=why))
        verdict = Verdict(kept, True, [], summary={"parity": "not measured here"})
        self.tried.append(verdict)
        return verdict

    @property
    def _evaluates(self) -> bool:
        return self.options.eval_data is not None and self.options.max_drop is not None

    def evaluate(self, verdict: Verdict, artifact: Path, io: ArtifactIO) -> None:
        """The accuracy gate's figures on `verdict`, where it is asked and not yet run: during the search only
        for files that passed parity; for the file kept at the end (a rejected one too) always."""
        if self._evaluates and verdict.evaluation is None:
            verdict.evaluation = self._evaluate(artifact, io)
            verdict.summary.pop("evaluated", None)
            verdict.summary.update({f"{k}_drop_pts": v for k, v in verdict.evaluation["drop"].items()})

    def _evaluate(self, artifact: Path, io: ArtifactIO) -> dict[str, Any]:
        from edgekit.evaluation import EvalReport, gate, score

        metrics = ("accuracy", "f1")
        signature = self.model.signature
        tok = self.model.tokenizer_dir
        data = self.options.eval_data
        assert data is not None
        if self._reference is None:
            with source_runner(self.model) as ref:
                self._reference = score(ref, signature, data, metrics, tok, None, self.progress, "the source")
        reference, loaded = self._reference
        with self._runner(artifact, io) as runner:
            values, _ = score(runner, signature, data, metrics, tok, None, self.progress, artifact.name, loaded)
        report = EvalReport(str(artifact), self.tgt.name, str(data), values, reference, max_drop=self.options.max_drop)
        gate(report, metrics)
        return report.to_json()


def fallback_record_json(
    options: FallbackOptions,
    verdict: Verdict,
    tried: list[Verdict],
    table: list[LayerSensitivity],
    pinned: tuple[str, ...],
) -> dict[str, Any]:
    """What the sidecar says about the fallback: every layer kept float with its sensitivity, each attempt."""
    by_name = {s.layer: s for s in table}
    return {
        "enabled": options.enabled,
        "pinned": list(pinned),
        **({"keep_sensitive": options.keep_sensitive} if options.keep_sensitive else {}),
        "float_layers": [
            {**(by_name[name].to_json() if name in by_name else {"layer": name}), "pinned": name in pinned}
            for name in verdict.kept
        ],
        "attempts": [v.to_json() for v in tried],
        "sensitivity": [s.to_json() for s in table],
    }
