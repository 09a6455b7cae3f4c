"""evaluate(): task metrics of an exported file, run in its own runtime, against its source, with a gate."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.data import Dataset, batch_size_for, class_indices, read_data
from edgekit.dispatch import open_runner
from edgekit.errors import DataError, UsageError
from edgekit.evaluation.perplexity import PREDICTIONS
from edgekit.evaluation.schema import SCHEMA_VERSION as EVALUATE_SCHEMA
from edgekit.progress import SILENT, Progress
from edgekit.runners import Runner
from edgekit.sidecar import read_sidecar
from edgekit.spec import InputSpecs, Signature

METRICS = ("accuracy", "f1", "perplexity")
# what each metric name reports, and which way is better
_REPORTED = {
    "accuracy": ("accuracy",),
    "f1": ("f1_macro", "f1_micro", "f1_binary"),
    "perplexity": ("perplexity", "next_token_accuracy"),
}


@dataclass
class EvalReport:
    artifact: str
    target: str | None
    data: str
    metrics: dict[str, Any]
    reference: dict[str, Any] | None = None
    drop: dict[str, float] = field(default_factory=dict)  # points for accuracy/F1; % increase for perplexity
    max_drop: float | None = None
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": EVALUATE_SCHEMA,
            "artifact": self.artifact,
            "target": self.target,
            "data": self.data,
            "metrics": self.metrics,
            "reference": self.reference,
            "drop": self.drop,
            "max_drop": self.max_drop,
            "passed": self.passed,
            "failures": self.failures,
            "notes": self.notes,
        }


def parse_metrics(text: str | None) -> tuple[str, ...]:
    if not text:
        return ()
    names = tuple(m.strip() for m in text.split(",") if m.strip())
    unknown = [m for m in names if m not in METRICS]
    if unknown:
        raise UsageError(f"Unknown metric(s) {', '.join(unknown)}.", hint=f"Metrics: {', '.join(METRICS)}.")
    return names


def tokenizer_for(artifact: Path, given: str | Path | None) -> Path | None:
    """The tokenizer folder: given, or recorded in the artifact's sidecar at export."""
    if given:
        return Path(given)
    sidecar = read_sidecar(artifact)
    recorded = sidecar.tokenizer if sidecar else None
    return Path(recorded) if recorded and Path(recorded).is_dir() else None


def _task(metrics: tuple[str, ...]) -> str:
    if "perplexity" in metrics:
        if {"accuracy", "f1"} & set(metrics):
            raise UsageError(
                "Perplexity is for language models, accuracy/F1 for classifiers: ask for one kind per run."
            )
        return "lm"
    return "classification"


def run_classifier(runner: Runner, data: Dataset, batch: int, progress: Progress) -> np.ndarray:
    """First output of `runner` over every batch of `data`, concatenated."""
    outputs = []
    for feed in progress.track(data.batches(batch), total=-(-len(data) // batch), label=f"{runner.name} inference"):
        outputs.append(next(iter(runner.infer(feed).values())))
    return np.concatenate(outputs)


def _metrics_for(
    task: str, runner: Runner, data: Dataset, text_ids: np.ndarray | None, signature: Signature, progress: Progress
) -> dict[str, Any]:
    from edgekit.evaluation.metrics import classification_metrics
    from edgekit.evaluation.perplexity import evaluate_perplexity

    if task == "lm":
        assert text_ids is not None, "language-model data is read as one token stream (_load)"
        return evaluate_perplexity(runner, text_ids, _context_length(signature))
    if data.labels is None:
        raise DataError(f"{data.source} has no labels: accuracy and F1 need a 'labels' array or 'label' column.")
    logits = run_classifier(runner, data, batch_size_for(signature), progress)
    if logits.ndim != 2:
        raise UsageError(
            f"The model's first output has shape {logits.shape}; accuracy/F1 need (batch, classes) scores.",
            hint="For a language model, ask for --metric perplexity.",
        )
    return classification_metrics(logits, class_indices(data.labels, data.source))


def evaluate(
    artifact: str | Path,
    data: str | Path,
    *,
    metrics: tuple[str, ...] = (),
    reference: str | Path | None = None,
    max_drop: float | None = None,
    tokenizer: str | Path | None = None,
    limit: int | None = None,
    reference_inputs: InputSpecs = (),
    reference_weights: str | Path | None = None,
    device: str = "local",
    device_options: Mapping[str, Any] | None = None,
    progress: Progress = SILENT,
) -> EvalReport:
    """Run `artifact` in its runtime over `data` (here, or on `device`: ssh://user@host[:port], reached with
    `device_options`, edgekit.transport's); with `reference`, compare with the source and gate on `max_drop`."""
    artifact = Path(artifact)
    metrics = metrics or ("accuracy", "f1")
    if max_drop is not None and reference is None:
        raise UsageError("--max-drop needs --reference SOURCE to compare against.")
    tok_dir = tokenizer_for(artifact, tokenizer)
    with _runner(artifact, device, device_options or {}) as runner:
        signature = Signature(runner.input_specs())
        model = _reference_model(reference, reference_inputs or signature.inputs, reference_weights)  # fails early
        values, loaded = score(runner, signature, data, metrics, tok_dir, limit, progress, artifact.name)
    predicted = values.pop(PREDICTIONS, None)
    sidecar = read_sidecar(artifact)
    report = EvalReport(str(artifact), sidecar.target if sidecar else None, str(data), values, max_drop=max_drop)
    if model is not None:
        from edgekit.dispatch import source_runner

        with source_runner(model) as ref_runner:  # in batches its own signature takes (--input fixing batch 1)
            label, specs = f"the reference {reference}", model.signature
            report.reference, _ = score(ref_runner, specs, data, metrics, tok_dir, limit, progress, label, loaded)
        theirs = report.reference.pop(PREDICTIONS, None)
        if predicted is not None and theirs is not None and len(predicted) == len(theirs) and len(predicted):
            # how often the file's most likely next token is the source's, whatever the true token was
            report.metrics["next_token_agreement"] = round(float((predicted == theirs).mean()), 6)
        report.notes += provenance_notes(artifact, sidecar, model)
        gate(report, metrics)
    return report


def provenance_notes(artifact: Path, sidecar: Any, reference: Any) -> list[str]:
    """Said when the reference is not the model the file was exported from (by the source hash its sidecar
    records), or when the file has no sidecar to tell: a student against its teacher is a fair comparison, a
    .pte or GGUF of another model is not, and the numbers alone do not show which."""
    if sidecar is None:
        return [
            f"{artifact.name} has no edgekit sidecar: which model it was exported from is unknown, so the "
            f"reference {reference.source} may not be its source."
        ]
    if sidecar.source.sha256 != reference.source_hash:
        return [
            f"{artifact.name} was exported from {sidecar.source.path} (sha256 {sidecar.source.sha256[:12]}), not "
            f"from the reference {reference.source} (sha256 {reference.source_hash[:12]}): the drop compares two "
            "different models."
        ]
    return []


def _runner(artifact: Path, device: str, options: Mapping[str, Any]) -> Runner:
    """The artifact's runner: here, or edgekit's worker running it on a device."""
    if device == "local":
        return open_runner(artifact)
    from edgekit.bench.remote import RemoteRunner

    return RemoteRunner(artifact, device, options)


def _reference_model(reference: str | Path | None, inputs: InputSpecs, weights: str | Path | None):
    """The reference SOURCE, loaded before the artifact's (maybe long) evaluation so that a bad one fails first."""
    if reference is None:
        return None
    from edgekit.sources import load

    return load(reference, inputs, weights)


def score(
    runner: Runner,
    signature: Signature,
    data: str | Path,
    metrics: tuple[str, ...],
    tokenizer_dir: Path | None,
    limit: int | None = None,
    progress: Progress = SILENT,
    label: str = "",
    loaded=None,
):
    """Metrics of an active runner over DATA; returns (metrics, loaded data) so a second runner can reuse the data."""
    from edgekit.data import resolve_data

    task = _task(metrics)
    if task == "lm":
        require_causal_lm(runner, signature)
    if loaded is None:
        loaded = _load(resolve_data(data, signature), signature, tokenizer_dir, task, limit)
    dataset, text_ids = loaded
    size = f"{len(dataset)} samples" if dataset is not None else f"{len(text_ids)} tokens"
    with progress.step(f"evaluate {label or runner.name} on {size}"):
        return _metrics_for(task, runner, dataset, text_ids, signature, progress), loaded


def _context_length(signature: Signature) -> int:
    ids = next(s for s in signature.inputs if s.name == "input_ids")
    return ids.shape[1] if len(ids.shape) > 1 and isinstance(ids.shape[1], int) else 128


def require_causal_lm(runner: Runner, signature: Signature) -> None:
    """Perplexity scores next-token logits: refuse, before any data or tokenizer is read, a model that has no
    input_ids input or whose first output is not (batch, sequence, vocabulary)."""
    hint = "Perplexity is for causal language models; for a classifier ask for --metric accuracy,f1."
    if "input_ids" not in signature.input_names:
        raise UsageError(
            "--metric perplexity needs a causal language model (input_ids in, next-token logits out); this "
            f"model's inputs are {', '.join(str(s) for s in signature.inputs)}.",
            hint=hint,
        )
    context = _context_length(signature)
    feed = {"input_ids": np.zeros((1, context), np.int64)}
    if "attention_mask" in signature.input_names:
        feed["attention_mask"] = np.ones((1, context), np.int64)
    name, logits = next(iter(runner.infer(feed).items()))
    if logits.ndim != 3 or logits.shape[1] != context:
        raise UsageError(
            "--metric perplexity needs a causal language model, whose first output is next-token logits of shape "
            f"(batch, sequence, vocabulary); this model's first output '{name}' has shape {tuple(logits.shape)} "
            f"for a sequence of {context} tokens.",
            hint=hint,
        )


def _load(path: Path, signature: Signature, tok_dir: Path | None, task: str, limit: int | None):
    if task == "lm":
        from edgekit.data import read_text_rows

        if tok_dir is None:
            raise DataError(
                "Perplexity needs text and the model's tokenizer.",
                hint="Pass --tokenizer DIR (a Hugging Face tokenizer folder), or export with one.",
            )
        from edgekit.data import load_tokenizer

        texts, _ = read_text_rows(path)
        texts = texts[:limit] if limit else texts
        tok = load_tokenizer(tok_dir)
        sep = [tok.eos_token_id] if tok.eos_token_id is not None else []
        ids = [i for t in texts for i in tok(t, add_special_tokens=False)["input_ids"] + sep]
        if len(ids) < 2:
            raise DataError(f"{path} holds too little text to score.")
        return None, np.array(ids, dtype=np.int64)
    return read_data(path, signature, tok_dir, limit), None


def gate(report: EvalReport, metrics: tuple[str, ...]) -> None:
    if report.reference is None:  # nothing to compare with
        return
    for metric in metrics:
        for key in _REPORTED[metric]:
            if key not in report.metrics or key not in report.reference:
                continue
            ref, got = report.reference[key], report.metrics[key]
            if key == "perplexity":
                drop = (got / ref - 1) * 100  # % increase
                what = f"perplexity {got:.3f} vs {ref:.3f} (+{drop:.2f}%)"
            else:
                drop = (ref - got) * 100  # points
                what = f"{key} {got:.4f} vs {ref:.4f} (drop {drop:.2f} pts)"
            report.drop[key] = round(drop, 4)
            if report.max_drop is not None and drop > report.max_drop and key in ("accuracy", "f1_macro", "perplexity"):
                report.failures.append(f"{what} exceeds --max-drop {report.max_drop}")
