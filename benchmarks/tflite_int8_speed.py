"""What tflite-int8's speed on the demo's MiniLM classifier is made of, against tflite-dynamic.

tflite-int8 with the defaults: the ONNX route passes keeping the non-linear ops float, so the litert-torch route
(PT2E static int8, whose file keeps them float by design, with SmoothQuant, per-channel output ranges and int8
embedding tables) is tried and its file chosen; and the ONNX route's file (`--keep-float '(non-linear ops)'`, what
the default was before: channel groups, float gathers and concatenations around int8 FULLY_CONNECTED parts).
Timed in one interleaved `edgekit benchmark` run (1 thread, batch 1, sequence 64, 5 fresh processes); each file's
parity on 256 validation tweets is its export's, its accuracy on the 1,000 test tweets is scored in its own
runtime against the source's. benchmarks/tflite_fc_kernels.py measures the kernels underneath.

    .venv/bin/python benchmarks/tflite_int8_speed.py   # -> benchmarks/results/tflite-int8-speed.PROFILE.json
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from machine import machine, result_file
from minilm_efficiency import bench, export

SOURCE = "edgekit_demo.zoo_text:minilm_sentiment"


def main() -> None:
    from edgekit.evaluation import evaluate
    from edgekit.progress import SILENT
    from edgekit.sidecar import read_sidecar
    from edgekit_demo import zoo_text
    from edgekit_demo.demo import _cached_sentiment_weights

    out = Path(tempfile.mkdtemp(prefix="edgekit-tflite-int8-"))
    files = export(out, zoo_text.SENTIMENT_INPUTS, [
        ("tflite-dynamic", "tflite-dynamic", []),
        ("tflite-int8", "tflite-int8", []),
        ("onnx-route", "tflite-int8", ["--keep-float", "(non-linear ops)"]),
    ])  # fmt: skip
    labels = {"tflite-dynamic": "tflite-dynamic", "tflite-int8": "tflite-int8 (default: litert-torch route)",
              "onnx-route": "tflite-int8 through ONNX (--keep-float '(non-linear ops)')"}  # fmt: skip
    files = {path: labels[label] for path, label in files.items()}
    runs = bench(list(files), out / "bench.json", ["--threads", "1", "--processes", "5", "--min-time", "1"])
    dynamic = next(r for r in runs if files[r["artifact"]] == "tflite-dynamic")
    weights = _cached_sentiment_weights(SILENT)
    rows = []
    for run in runs:
        report = evaluate(run["artifact"], "builtin:tweets:test", reference=SOURCE, reference_weights=weights)
        sidecar = read_sidecar(Path(run["artifact"])).model_dump(mode="json")
        quantization, route = sidecar["quantization"], sidecar["route"]
        # the last attempt is the file's (the dynamic file has no fallback)
        last = ((quantization.get("fallback") or {}).get("attempts") or [{}])[-1]
        parity = {"parity_cosine": last.get("cosine"), "top1_agreement": last.get("top1_agreement")}
        rows.append(
            {
                "file": files[run["artifact"]],
                "size_mb": round(run["size_bytes"] / 1e6, 2),
                "p50_ms": round(run["latency_ms"]["p50"], 3),
                "speed_vs_dynamic": round(dynamic["latency_ms"]["p50"] / run["latency_ms"]["p50"], 3),
                "route": " -> ".join(step["tool"] for step in route if step.get("tool")),
                "float_op_types": next((s["float_op_types"] for s in route if s.get("float_op_types")), {}),
                **parity,
                "accuracy": round(report.metrics["accuracy"], 4),
                "accuracy_drop_pts": round(100 * (report.reference["accuracy"] - report.metrics["accuracy"]), 2),
            }
        )
    document = {
        "what": __doc__.splitlines()[0],
        "machine": machine(runs[0]["environment"], "runtime_versions"),
        "rows": rows,
    }
    result = result_file("tflite-int8-speed")
    result.write_text(json.dumps(document, indent=2) + "\n")
    for r in rows:
        print(f"{r['file']:52s} {r['size_mb']:6.2f} MB p50 {r['p50_ms']:.2f} ms x{r['speed_vs_dynamic']} dynamic; "
              f"cosine {r.get('parity_cosine')} acc {r['accuracy']} ({r['accuracy_drop_pts']:+.2f} pt)")  # fmt: skip


if __name__ == "__main__":
    main()
