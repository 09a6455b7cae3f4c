"""The demo as a graph of steps for edgekit's executor: every export and evaluation side by side in worker
processes, then one step that times every file alone (anything beside it would be in its numbers).

Each step's work is a module-level function with plain arguments, so it pickles to a worker process. A
target that fails is a result too: its step returns the error as its record instead of failing, so the
timing step, which depends on every export, still runs.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.release.steps import Job, Step

TEST_DATA = "builtin:tweets:test"
CLASSIFIER = "edgekit_demo.zoo_text:minilm_sentiment"
LM = "edgekit_demo.zoo_text:tiny_causal_lm"
HF_INPUTS = tuple(f"{n}:int64:batchx64" for n in ("input_ids", "attention_mask", "token_type_ids"))
LM_TARGETS = ("onnx-fp32", "onnx-int8-dynamic", "onnx-int8")
MAX_DROP = 0.5  # the int8 files' accuracy gate (points, on validation tweets) where the fallback works to it
TIMING_THREADS = 1  # every file and the source timed alike, as `edgekit benchmark` does by default
FEED = "feed.npz"  # the source step's first test sample, batch 1: what the timing step feeds every file


@dataclass
class DemoGraph:
    """The steps, and which of them make each part of the results."""

    steps: list[Step] = field(default_factory=list)
    classifier: dict[str, str] = field(default_factory=dict)  # target -> step id
    distilled: dict[str, str] = field(default_factory=dict)  # row name -> step id
    lm: dict[str, str] = field(default_factory=dict)  # target -> step id
    source: str = "evaluate the source (torch)"
    timing: str = "time every file (alone, 1 thread)"

    def add(self, step_id: str, work, deps: tuple[str, ...] = ()) -> str:
        job = Job(_key(step_id), work)
        self.steps.append(Step(step_id, deps, partial(_planned, job)))
        return step_id


def _key(step_id: str) -> str:
    """A step's cache key: the demo builds everything afresh in its own cache, so its name is enough."""
    return hashlib.sha256(step_id.encode()).hexdigest()


def _planned(job: Job, records: dict[str, dict]) -> Job:
    return job


def build_graph(
    inputs: dict[str, Path], classifier_targets: list[str], parts: tuple[str, ...], cache: Path
) -> DemoGraph:
    """The demo's steps. `inputs`: the cached models and the data files the driver prepared."""
    graph = DemoGraph()
    # the slowest first (the int8 files the fallback works to a gate: minutes each), so the workers end together
    gated = [t for t in classifier_targets if _gated(t)]
    for target in [*gated, *(t for t in classifier_targets if t not in gated)]:
        work = partial(classifier_row, target, str(inputs["weights"]), str(inputs["calib"]), str(inputs["gate"]))
        graph.classifier[target] = graph.add(f"export and evaluate {target}", work)
    if "distillation" in parts:
        for name in ("teacher", "student"):
            step = f"export the distilled {name} (onnx-int8-dynamic)"
            graph.distilled[name] = graph.add(step, partial(distilled_row, str(inputs[name]), str(inputs["calib"])))
    graph.add(graph.source, partial(source_row, str(inputs["weights"])))
    if "lm" in parts:
        lm = (str(inputs["lm_tokenizer"]), str(inputs["lm_weights"]), str(inputs["lm_calib"]))
        for target in LM_TARGETS:
            graph.lm[target] = graph.add(f"tiny LM {target}", partial(lm_rows, target, *lm))
    timed = (graph.source, *graph.classifier.values(), *graph.distilled.values())
    graph.steps.append(Step(graph.timing, timed, partial(_timing_job, graph, cache, str(inputs["weights"]))))
    return graph


def _gated(target: str) -> bool:
    """Whether the target's export works to the accuracy gate with the per-layer fallback."""
    from edgekit.backends.registry import backend_for_runtime
    from edgekit.catalog import get_target

    tgt = get_target(target)
    backend = backend_for_runtime(tgt.runtime)
    return backend is not None and backend.keeps_float(tgt.quantization)


def _timing_job(graph: DemoGraph, cache: Path, weights: str, records: dict[str, dict]) -> Job:
    """Times the source and every file the export steps made (exclusive: nothing runs beside it)."""
    files = {
        step: str(cache / records[step]["_key"] / records[step]["file"])
        for step in (*graph.classifier.values(), *graph.distilled.values())
        if "file" in records[step]
    }
    feed = str(cache / records[graph.source]["_key"] / FEED)
    return Job(_key(graph.timing), partial(time_files, files, feed, weights), exclusive=True)


def source_row(weights: str, folder: Path) -> dict[str, Any]:
    """The source classifier's accuracy and F1 on the test tweets; saves its first sample for the timing."""
    from edgekit.dispatch import source_runner
    from edgekit.evaluation import score
    from edgekit.sources import load
    from edgekit.spec import Signature, parse_input_specs
    from edgekit_demo import zoo_text

    inputs = parse_input_specs(zoo_text.SENTIMENT_INPUTS)
    with source_runner(load(CLASSIFIER, inputs, weights)) as runner:
        metrics, (dataset, _) = score(runner, Signature(inputs), TEST_DATA, ("accuracy", "f1"), zoo_text.minilm_dir())
    np.savez(folder / FEED, **{s.name: dataset.arrays[s.name][:1] for s in inputs})
    return {"metrics": metrics}


def classifier_row(target: str, weights: str, calib: str, gate: str, folder: Path) -> dict[str, Any]:
    """Export the classifier to `target` (int8 files gated by the per-layer fallback where it works to
    the gate) and evaluate the file in its own runtime on the test tweets."""
    from edgekit.evaluation import evaluate
    from edgekit.exporter import export
    from edgekit.fallback import FallbackOptions
    from edgekit.spec import parse_input_specs
    from edgekit_demo import zoo_text

    tok = zoo_text.minilm_dir()
    # the accuracy gate where the per-layer fallback can work to it; the others show their drop
    fallback = FallbackOptions(eval_data=Path(gate), max_drop=MAX_DROP) if _gated(target) else FallbackOptions()
    try:
        result = export(
            CLASSIFIER,
            target,
            folder,
            calib=calib,
            weights=weights,
            inputs=parse_input_specs(zoo_text.SENTIMENT_INPUTS),
            tokenizer=tok,
            fallback=fallback,
        )
        report = evaluate(result.artifact, TEST_DATA, tokenizer=tok)
    except EdgekitError as e:
        return {"error": e.message}
    kept = (result.sidecar["quantization"].get("fallback") or {}).get("float_layers", [])
    return {
        "file": result.artifact.name,
        "size_bytes": result.size_bytes,
        "scheme": result.sidecar["quantization"].get("scheme_name"),
        "accuracy": report.metrics["accuracy"],
        "f1_macro": report.metrics["f1_macro"],
        "float_layers": [f["layer"] for f in kept],
    }


def distilled_row(model: str, calib: str, folder: Path) -> dict[str, Any]:
    """A distilled (or teacher) Hugging Face folder exported to onnx-int8-dynamic and evaluated."""
    from edgekit.evaluation import evaluate
    from edgekit.exporter import export
    from edgekit.spec import parse_input_specs

    try:
        result = export(model, "onnx-int8-dynamic", folder, calib=calib, inputs=parse_input_specs(HF_INPUTS))
        report = evaluate(result.artifact, TEST_DATA)
    except EdgekitError as e:
        return {"error": e.message}
    return {
        "file": result.artifact.name,
        "size_bytes": result.size_bytes,
        "accuracy": report.metrics["accuracy"],
        "f1_macro": report.metrics["f1_macro"],
    }


def lm_rows(target: str, tokenizer: str, weights: str, calib: str, folder: Path) -> dict[str, Any]:
    """The tiny LM exported to `target` and its perplexity in that runtime (and the source's, for fp32)."""
    from edgekit.evaluation import evaluate
    from edgekit.exporter import export
    from edgekit.spec import parse_input_specs
    from edgekit_demo import zoo_text

    try:
        inputs = parse_input_specs(zoo_text.LM_INPUTS)
        result = export(LM, target, folder, calib=calib, weights=weights, inputs=inputs, tokenizer=tokenizer)
        report = evaluate(
            result.artifact,
            TEST_DATA,
            metrics=("perplexity",),
            tokenizer=tokenizer,
            reference=LM if target == "onnx-fp32" else None,
            reference_weights=weights,
        )
    except EdgekitError as e:
        return {"rows": [{"target": target, "error": e.message}]}
    rows = [{"target": "source (torch)", **report.reference}] if report.reference else []
    rows.append({"target": target, "file": result.artifact.name, "size_bytes": result.size_bytes, **report.metrics})
    return {"rows": rows}


def p50_ms(runner, feed: dict[str, np.ndarray], runs: int = 30) -> float:
    """Median in-process latency after two warm-up runs (a quick figure; `edgekit benchmark` is the real one)."""
    for _ in range(2):
        runner.infer(feed, check=False)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        runner.infer(feed, check=False)
        times.append((time.perf_counter() - start) * 1e3)
    return float(np.median(times))


def time_files(files: dict[str, str], feed_path: str, weights: str, folder: Path) -> dict[str, Any]:
    """p50 of the source and of each file (by the step that made it), batch 1, one thread each, on the
    first test tweet (the distilled models' token_type_ids: zeros, one segment)."""
    import torch

    from edgekit.dispatch import open_runner, source_runner
    from edgekit.sources import load
    from edgekit.spec import parse_input_specs
    from edgekit_demo import zoo_text

    feed = dict(np.load(feed_path))
    threads = torch.get_num_threads()
    torch.set_num_threads(TIMING_THREADS)
    try:
        with source_runner(load(CLASSIFIER, parse_input_specs(zoo_text.SENTIMENT_INPUTS), weights)) as runner:
            times = {"source": p50_ms(runner, feed)}
    finally:
        torch.set_num_threads(threads)
    for step, path in files.items():
        try:
            with open_runner(path, threads=TIMING_THREADS) as runner:
                names = [s.name for s in runner.input_specs()]
                times[step] = p50_ms(runner, {n: feed.get(n, np.zeros((1, 64), np.int64)) for n in names})
        except EdgekitError as e:  # a file that exported but cannot run here: its row says so
            times[step] = {"error": e.message}
    return {"p50_ms": times}
