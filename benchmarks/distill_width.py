"""The distilled student's width, measured: the demo's MiniLM-L6 teacher distilled into 3-layer students whose
feed-forward blocks keep all, half or a quarter of their units (`edgekit compress distill --student-layers 3
--student-width W`, the demo's training settings), each exported to onnx-int8-dynamic, evaluated on the 1,000
test tweets and timed in one interleaved `edgekit benchmark` run (fresh process per repetition, 1 thread,
batch 1, seq 64).

    .venv/bin/python benchmarks/distill_width.py    # writes results/distill-width.json and .txt

The teacher and the full-width student come from the demo's cache (built on first use: about 10 minutes).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from distill_minilm import model_table

RESULTS = Path(__file__).resolve().parent / "results"
WIDTHS = (0.5, 0.25)


def main() -> int:
    from edgekit.artifact import write_json_atomic
    from edgekit.bench.harness import Settings, benchmark
    from edgekit.bench.worker import environment
    from edgekit.compress import TrainSettings, distill
    from edgekit.evaluation import evaluate
    from edgekit.exporter import export
    from edgekit.progress import Progress
    from edgekit.spec import parse_input_specs
    from edgekit_demo.datasets import write_tweets_csv
    from edgekit_demo.demo import DISTILL_TEXTS, HF_INPUTS, TEST_DATA, _cached_distillation

    progress = Progress()
    teacher, full = _cached_distillation(progress)
    out = Path(tempfile.mkdtemp(prefix="edgekit-width-"))
    train = write_tweets_csv(out / "train.csv", "train", DISTILL_TEXTS)
    calib = write_tweets_csv(out / "calib.csv", "validation", 256)
    students: list[tuple[str, Path, float]] = [("3 layers, width 1", full, 0.0)]
    for width in WIDTHS:
        start = time.perf_counter()
        result = distill(
            teacher, train, out / f"width-{width}", student_layers=3, student_width=width, alpha=0.5,
            temperature=2.0, inputs=parse_input_specs(HF_INPUTS),
            settings=TrainSettings(epochs=2, lr=1e-4, batch=32), progress=progress,
        )  # fmt: skip
        students.append((f"3 layers, width {width:g}", result.out, round(time.perf_counter() - start, 1)))
    rows, files = [], []
    for name, folder, seconds in [("teacher (6 layers)", teacher, 0.0), *students]:
        exported = export(folder, "onnx-int8-dynamic", out, calib=calib, inputs=HF_INPUTS, progress=progress)
        report = evaluate(exported.artifact, TEST_DATA, progress=progress)
        files.append(exported.artifact)
        rows.append({
            "model": name,
            "parameters": _parameters(folder),
            "size_bytes": exported.sidecar["size_bytes"],
            "accuracy": report.metrics["accuracy"],
            "f1_macro": report.metrics["f1_macro"],
            "distill_seconds": seconds or None,
        })  # fmt: skip
    runs, error = benchmark(files, "local", Settings(threads=(1,), batches=(1,), processes=5, min_runs=100), progress)
    if error:
        print(error, file=sys.stderr)
        return 1
    for row, run in zip(rows, runs):
        row.update(p50_ms=run["latency_ms"]["p50"], noisy=run["noisy"])
    results = {"rows": rows, "environment": environment(), "runs": runs}
    RESULTS.mkdir(exist_ok=True)
    write_json_atomic(RESULTS / "distill-width.json", results)
    lines = model_table(rows, results["environment"], 22)
    (RESULTS / "distill-width.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


def _parameters(folder: Path) -> int:
    from safetensors.numpy import load_file

    return sum(int(v.size) for f in folder.glob("*.safetensors") for v in load_file(f).values())


if __name__ == "__main__":
    sys.exit(main())
