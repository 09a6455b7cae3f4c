"""Which runtime wins for the demo's MiniLM classifier on this CPU: onnx-fp32 (the reference of every ratio),
edgekit's best ONNX Runtime int8 (onnx-int8-dynamic, fused), openvino-fp32, openvino-int8 (NNCF, transformer
mode) and openvino-int8-weights, in one interleaved `edgekit benchmark` run (batch 1, sequence 64, 1 thread,
5 fresh processes each), with each file's accuracy and macro-F1 on the 1,000 test tweets beside the source's.

    .venv/bin/python benchmarks/minilm_openvino.py   # -> benchmarks/results/minilm-openvino.json
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from machine import machine
from minilm_efficiency import ROOT, bench, export

VARIANTS = [  # (label, target, export options); the first is the reference of every ratio
    ("onnx-fp32", "onnx-fp32", []),
    ("onnx-int8-dynamic (fused)", "onnx-int8-dynamic", []),
    ("openvino-fp32", "openvino-fp32", []),
    ("openvino-int8", "openvino-int8", []),
    ("openvino-int8-weights", "openvino-int8-weights", []),
]
TEST = "builtin:tweets:test"


def main() -> None:
    from edgekit.evaluation import evaluate
    from edgekit.progress import SILENT
    from edgekit_demo import zoo_text
    from edgekit_demo.demo import _cached_sentiment_weights

    out = Path(tempfile.mkdtemp(prefix="edgekit-ov-"))
    files = export(out, zoo_text.SENTIMENT_INPUTS, VARIANTS)
    runs = bench(list(files), out / "bench.json", ["--processes", "5", "--min-time", "1"])
    weights = _cached_sentiment_weights(SILENT)
    source = "edgekit_demo.zoo_text:minilm_sentiment"
    reference = None
    rows = []
    for run in runs:
        report = evaluate(run["artifact"], TEST, reference=source if reference is None else None,
                          reference_weights=weights if reference is None else None)  # fmt: skip
        reference = reference or {k: round(v, 4) for k, v in report.reference.items() if k in ("accuracy", "f1_macro")}
        ratio = run.get("ratio_to_first")
        rows.append(
            {
                "variant": files[run["artifact"]],
                "file": Path(run["artifact"]).name,
                "size_mb": round(run["size_bytes"] / 1e6, 2),
                "p50_ms": round(run["latency_ms"]["p50"], 3),
                "median_ci95_ms": run["latency_ms"].get("median_ci95"),
                "speedup_vs_onnx_fp32": round(ratio["ratio"], 3) if ratio else 1.0,
                "speedup_ci95": ratio["ci95"] if ratio else None,
                "accuracy": round(report.metrics["accuracy"], 4),
                "f1_macro": round(report.metrics["f1_macro"], 4),
                "f1_drop_pts": round(100 * (reference["f1_macro"] - report.metrics["f1_macro"]), 2),
                "runtime": run["environment"].get("runtime_versions", {}),
            }
        )
    env = runs[0]["environment"]
    result = {
        "what": __doc__.split("\n\n")[0].replace("\n", " "),
        "machine": machine(env),
        "settings": {"threads": 1, "batch": 1, "seq_len": 64, "processes": 5, "min_time_s": 1},
        "source": {"model": source, "test": TEST, **reference},
        "rows": rows,
    }
    path = ROOT / "benchmarks" / "results" / "minilm-openvino.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    for r in rows:
        print(
            f"{r['variant']:26s} p50 {r['p50_ms']:6.2f} ms  x{r['speedup_vs_onnx_fp32']:<6} {r['size_mb']:6.1f} MB  "
            f"acc {r['accuracy']:.4f}  F1 {r['f1_macro']:.4f} (drop {r['f1_drop_pts']:+.2f} pts)"
        )


if __name__ == "__main__":
    main()
