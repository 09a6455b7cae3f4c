"""The demo's distillation, measured: the fine-tuned MiniLM-L6 teacher and its 3-layer distilled student,
both exported to onnx-int8-dynamic, evaluated on the 1,000 test tweets and timed in one interleaved
`edgekit benchmark` run (fresh process per repetition, 1 thread, batch 1, seq 64).

    .venv/bin/python benchmarks/distill_minilm.py    # writes results/distill-minilm.json and .txt

Teacher and student are built (and cached) by the demo's own code on first use: about 10 minutes on 2 cores.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> int:
    from edgekit.artifact import write_json_atomic
    from edgekit.bench.harness import Settings, benchmark
    from edgekit.bench.worker import environment
    from edgekit.compress import TrainSettings, prune, prune_vocabulary
    from edgekit.evaluation import evaluate
    from edgekit.exporter import export
    from edgekit.progress import Progress
    from edgekit_demo.datasets import write_tweets_csv
    from edgekit_demo.demo import DISTILL_TEXTS, HF_INPUTS, TEST_DATA, _cached_distillation

    progress = Progress()
    start = time.perf_counter()
    teacher, student = _cached_distillation(progress)
    built = time.perf_counter() - start
    record = json.loads((student / "compress.json").read_text())
    out = Path(tempfile.mkdtemp(prefix="edgekit-distill-"))
    calib = write_tweets_csv(out / "calib.csv", "validation", 256)
    # the teacher with half of its attention heads and FFN neurons removed, fine-tuned one epoch
    start = time.perf_counter()
    train = write_tweets_csv(out / "train.csv", "train", DISTILL_TEXTS)
    pruned = prune(
        teacher,
        train,
        out / "teacher-pruned",
        sparsity=0.5,
        method="structured",
        finetune_epochs=1,
        settings=TrainSettings(lr=1e-4),
        inputs=HF_INPUTS,
        progress=progress,
    )
    pruned_seconds = time.perf_counter() - start
    # the student with only the token embeddings the training tweets use
    small = prune_vocabulary(
        student,
        write_tweets_csv(out / "train-all.csv", "train"),
        out / "student-vocab",
        inputs=HF_INPUTS,
        progress=progress,
    )
    models = (
        ("teacher", teacher, record["teacher"]["parameters"]),
        ("student (3 layers, distilled)", student, record["student"]["parameters"]),
        ("teacher, 50% heads+FFN pruned", pruned.out, pruned.record["parameters_after"]),
        ("student, vocabulary of the train tweets", small.out, small.record["parameters_after"]),
    )
    files, rows = [], []
    for name, folder, params in models:
        result = export(folder, "onnx-int8-dynamic", out, calib=calib, inputs=HF_INPUTS, progress=progress)
        report = evaluate(result.artifact, TEST_DATA, progress=progress)
        files.append(result.artifact)
        rows.append(
            {
                "model": name,
                "parameters": params,
                "size_bytes": result.sidecar["size_bytes"],
                **{k: report.metrics[k] for k in ("accuracy", "f1_macro")},
            }
        )
    runs, error = benchmark(files, "local", Settings(threads=(1,), batches=(1,), processes=5, min_runs=100), progress)
    if error:
        print(error, file=sys.stderr)
        return 1
    for row, run in zip(rows, runs):
        row.update(p50_ms=run["latency_ms"]["p50"], peak_rss_mb=run["peak_rss_mb"], noisy=run["noisy"])
    teacher_row, student_row = rows[0], rows[3]  # the distilled student, its vocabulary pruned
    summary = {
        "f1_kept": student_row["f1_macro"] / teacher_row["f1_macro"],
        "parameters_ratio": student_row["parameters"] / teacher_row["parameters"],
        "speedup_p50": teacher_row["p50_ms"] / student_row["p50_ms"],
        "goal": "student keeps >= 97% of the teacher's macro-F1 with <= 55% of its parameters, >= 1.8x faster",
    }
    results = {
        "rows": rows,
        "summary": summary,
        "distillation": {k: record[k] for k in ("alpha", "temperature", "settings", "data", "history")},
        "vocabulary_pruning": {
            k: small.record[k] for k in ("tokens_before", "tokens_after", "parameters_before", "parameters_after")
        },
        "structured_pruning": {
            k: pruned.record[k] for k in ("parameters_before", "parameters_after", "parameters_removed", "history")
        },
        "seconds": {"teacher_and_student_this_run": round(built, 1), "structured_pruning": round(pruned_seconds, 1)},
        "environment": environment(),
        "runs": runs,
    }
    RESULTS.mkdir(exist_ok=True)
    write_json_atomic(RESULTS / "distill-minilm.json", results)
    lines = model_table(rows, results["environment"], 32)
    lines.append(
        f"student keeps {summary['f1_kept']:.1%} of the teacher's macro-F1 with "
        f"{summary['parameters_ratio']:.1%} of its parameters, {summary['speedup_p50']:.2f}x faster (p50)"
    )
    (RESULTS / "distill-minilm.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


def model_table(rows: list[dict], env: dict, width: int) -> list[str]:
    """The machine, then one line per model: parameters, size, accuracy, macro-F1 and p50 of its int8 file."""
    lines = [
        f"machine: {env.get('cpu_model')} ({', '.join(env.get('cpu_flags', []))}), {env.get('cpu_count')} cores",
        f"{'model':<{width}}{'params':>12}{'size':>10}{'accuracy':>10}{'macro-F1':>10}{'p50 ms':>9}"
        "   (onnx-int8-dynamic, 1 thread, batch 1)",
    ]
    return lines + [
        f"{r['model']:<{width}}{r['parameters']:>12,}{r['size_bytes'] / 1e6:>7.1f} MB{r['accuracy']:>10.3f}"
        f"{r['f1_macro']:>10.3f}{r['p50_ms']:>9.2f}"
        for r in rows
    ]


if __name__ == "__main__":
    sys.exit(main())
