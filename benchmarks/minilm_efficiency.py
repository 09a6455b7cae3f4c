"""How close MiniLM runs to this machine's limit: the demo classifier's onnx-fp32 and onnx-int8-dynamic files
in one interleaved `edgekit benchmark` run (1 and 2 threads, batch 1, sequence 64, 3 fresh processes), with
each run's arithmetic work, achieved GFLOP/s and efficiency against the measured GEMM peak.

    .venv/bin/python benchmarks/minilm_efficiency.py   # -> benchmarks/results/minilm-efficiency.json
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EDGEKIT = [sys.executable, "-m", "edgekit"]


def main() -> None:
    from edgekit.progress import SILENT
    from edgekit_demo import zoo_text
    from edgekit_demo.demo import _cached_sentiment_weights

    out = Path(tempfile.mkdtemp(prefix="edgekit-eff-"))
    weights = _cached_sentiment_weights(SILENT)
    inputs = [arg for spec in zoo_text.SENTIMENT_INPUTS for arg in ("--input", spec)]
    files = []
    for target in ("onnx-fp32", "onnx-int8-dynamic"):
        source = ["edgekit_demo.zoo_text:minilm_sentiment", "--weights", str(weights), *inputs]
        subprocess.run([*EDGEKIT, "export", *source, "-t", target, "-o", str(out), "-q"], check=True)
        files.append(str(out / f"minilm-sentiment-{target}.onnx"))
    bench = out / "bench.json"
    settings = ["--threads", "1,2", "--processes", "3", "--json", str(bench), "-q"]
    subprocess.run([*EDGEKIT, "benchmark", *files, *settings], check=True)
    runs = json.loads(bench.read_text())
    keep = ("macs", "int8_flops", "float_flops", "achieved_gflops", "peak_gflops", "efficiency")
    rows = [
        {
            "file": Path(r["artifact"]).name,
            "threads": r["threads"],
            "batch": r["batch"],
            "inputs": r["inputs"],
            "p50_ms": round(r["latency_ms"]["p50"], 3),
            **{k: r["work"][k] for k in keep},
        }
        for r in runs
    ]
    env = runs[0]["environment"]
    result = {
        "what": __doc__.splitlines()[0],
        "machine": {k: env.get(k) for k in ("cpu_model", "cpu_count", "cpu_flags", "onnxruntime")},
        "rows": rows,
    }
    path = ROOT / "benchmarks" / "results" / "minilm-efficiency.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    for r in rows:
        print(
            f"{r['file']:45s} threads={r['threads']} p50 {r['p50_ms']:.2f} ms "
            f"{r['achieved_gflops']:.0f} GFLOP/s η {r['efficiency']}"
        )


if __name__ == "__main__":
    main()
