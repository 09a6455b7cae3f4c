"""The benchmark harness measured against itself, on the MiniLM sentiment classifier's onnx-fp32 file.

1. Repeatability: the median latency reported by 5 separate `edgekit benchmark` invocations
   (5 fresh processes each): spread = (max - min) / median of the 5 medians. Goal <= 3 %.
   Each invocation also times a byte-identical copy, interleaved: the copy/original ratio shows how
   well a comparison within one run holds while the machine drifts.
2. Overhead: the worker's timed loop vs a bare `session.run` loop on the same session and input,
   alternated in blocks within one process so machine noise hits both alike. Goal <= 2 %.

    python benchmarks/harness_self.py [--out benchmarks/results/harness_self.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def minilm_fp32(folder: Path) -> Path:
    from edgekit.exporter import export
    from edgekit.spec import parse_input_specs
    from edgekit_demo import zoo_text

    return export(
        "edgekit_demo.zoo_text:minilm_sentiment",
        "onnx-fp32",
        folder,
        inputs=parse_input_specs(zoo_text.SENTIMENT_INPUTS),
    ).artifact


def repeatability(model: Path, invocations: int = 5) -> dict:
    """Each invocation benchmarks the file and a byte-identical copy, interleaved (A/A).

    The spread of the file's median across invocations shows how far absolute numbers move on this
    machine; the copy/file ratio within each invocation shows how well one run's comparison holds.
    """
    copy = model.with_name("copy-" + model.name)
    copy.write_bytes(model.read_bytes())
    medians, ratios = [], []
    for _ in range(invocations):
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "edgekit",
                    "benchmark",
                    str(model),
                    str(copy),
                    "--processes",
                    "5",
                    "--min-runs",
                    "100",
                    "--min-time",
                    "2",
                    "--json",
                    out.name,
                    "-q",
                ],
                check=True,
                capture_output=True,
            )
            runs = json.loads(Path(out.name).read_text())
        medians.append(runs[0]["latency_ms"]["p50"])
        ratios.append(runs[1]["latency_ms"]["p50"] / runs[0]["latency_ms"]["p50"])
    mid = statistics.median(medians)
    return {
        "invocations": invocations,
        "p50_ms": medians,
        "spread_pct": (max(medians) - min(medians)) / mid * 100,
        "aa_ratio": ratios,
        "aa_max_deviation_pct": max(abs(r - 1) for r in ratios) * 100,
    }


def overhead(model: Path, blocks: int = 40, runs: int = 50) -> dict:
    """Per-inference time of the worker's loop body vs a bare loop, alternating blocks."""
    root = Path(__file__).resolve().parents[1] / "edgekit"
    sys.path.insert(0, str(root / "bench"))
    import worker  # the exact code the harness runs on the device

    loader = worker.import_file(root / "backends" / "onnxruntime" / "worker_loader.py", "loader")
    synthetic = worker.import_file(root / "synthetic.py", "synthetic")
    specs, infer, _ = loader.load(loader.import_runtime(), str(model), 1)
    feed = worker.make_inputs(specs, 1, 0, synthetic.synthetic_array)
    session = infer.session  # the same session the worker's loop calls
    names = [o.name for o in session.get_outputs()]
    clock = time.perf_counter
    for _ in range(20):
        infer(feed)
    harness, bare = [], []
    for block in range(blocks):
        for kind in ("harness", "bare") if block % 2 == 0 else ("bare", "harness"):
            samples = []
            if kind == "harness":  # the worker's loop: timed call through its infer closure
                for _ in range(runs):
                    t0 = clock()
                    infer(feed)
                    samples.append((clock() - t0) * 1e3)
                harness.extend(samples)
            else:  # bare ONNX Runtime: one session.run per iteration, timed the same way
                for _ in range(runs):
                    t0 = clock()
                    session.run(names, feed)
                    samples.append((clock() - t0) * 1e3)
                bare.extend(samples)
    h, b = float(np.median(harness)), float(np.median(bare))
    return {"harness_p50_ms": h, "bare_p50_ms": b, "overhead_pct": (h / b - 1) * 100, "samples_each": len(harness)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "harness_self.json"))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="edgekit-bench-self-"))
    model = minilm_fp32(work)
    from edgekit.bench.worker import environment

    result = {
        "model": "MiniLM sentiment classifier, onnx-fp32, batch 1, 1 thread, seq 64",
        "repeatability": repeatability(model),
        "overhead": overhead(model),
        "environment": environment(),
        "date": time.strftime("%Y-%m-%d"),
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("repeatability", "overhead")}, indent=2))


if __name__ == "__main__":
    main()
