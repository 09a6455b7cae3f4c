"""edgekit's best int8 MiniLM file on this CPU against the plain (unfused) onnx-fp32 export, the goal of the
transformer-int8 work: macro-F1 drop <= 0.3 pt, >= 3.9x smaller, p50 >= 2.5x faster on a VNNI CPU, and an
efficiency eta >= 0.5 against the machine's measured int8 GEMM peak. The int8 candidates, one per runtime
that counts its work: fused onnx-int8-dynamic, openvino-int8 (NNCF) and tflite-dynamic; one interleaved
`edgekit benchmark` run at 1 and 2 threads (batch 1, sequence 64, 5 fresh processes each), then each file's
accuracy and macro-F1 on the 1,000 test tweets in its own runtime.

    .venv/bin/python benchmarks/minilm_best_int8.py   # -> benchmarks/results/minilm-best-int8.json
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from machine import machine
from minilm_efficiency import ROOT, bench, export, row

VARIANTS = [  # (label, target, export options); the first is the reference of every ratio
    ("onnx-fp32 (plain)", "onnx-fp32", ["--no-fuse"]),
    ("onnx-int8-dynamic (fused)", "onnx-int8-dynamic", []),
    ("openvino-int8", "openvino-int8", []),
    ("tflite-dynamic", "tflite-dynamic", []),
]
GOALS = {"f1_drop_pts": 0.3, "smaller": 3.9, "speedup": 2.5, "efficiency": 0.5}


def main() -> None:
    from edgekit.evaluation import evaluate
    from edgekit.progress import SILENT
    from edgekit_demo import zoo_text
    from edgekit_demo.demo import _cached_sentiment_weights

    out = Path(tempfile.mkdtemp(prefix="edgekit-best-"))
    files = export(out, zoo_text.SENTIMENT_INPUTS, VARIANTS)
    runs = bench(list(files), out / "bench.json", ["--threads", "1,2", "--processes", "5", "--min-time", "1"])
    weights = _cached_sentiment_weights(SILENT)
    source = "edgekit_demo.zoo_text:minilm_sentiment"
    first_file, *others = files
    first = evaluate(first_file, "builtin:tweets:test", reference=source, reference_weights=weights)
    reference = first.reference
    scores = {first_file: first.metrics} | {a: evaluate(a, "builtin:tweets:test").metrics for a in others}
    plain = next(r for r in runs if files[r["artifact"]] == VARIANTS[0][0])
    rows = []
    for run in runs:
        metrics = scores[run["artifact"]]
        rows.append(
            {
                **row(run, files),
                "speedup_ci95": (run.get("ratio_to_first") or {}).get("ci95"),
                "smaller_vs_first": round(plain["size_bytes"] / run["size_bytes"], 2),
                "accuracy": round(metrics["accuracy"], 4),
                "f1_macro": round(metrics["f1_macro"], 4),
                "f1_drop_pts": round(100 * (reference["f1_macro"] - metrics["f1_macro"]), 2),
            }
        )
    env = runs[0]["environment"]
    result = {
        "what": __doc__.splitlines()[0],
        "machine": machine(env, "runtime_versions"),
        "source": {k: round(reference[k], 4) for k in ("accuracy", "f1_macro")},
        "goals": GOALS,
        "rows": rows,
    }
    path = ROOT / "benchmarks" / "results" / "minilm-best-int8.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    for r in rows:
        print(
            f"{r['variant']:26s} t={r['threads']} p50 {r['p50_ms']:.2f} ms x{r['speedup_vs_first']} "
            f"{r['size_mb']} MB ({r['smaller_vs_first']}x smaller) F1 {r['f1_macro']} ({r['f1_drop_pts']:+.2f} pt) "
            f"{r['achieved_gflops']:.0f} GFLOP/s eta {r['efficiency']}"
        )


if __name__ == "__main__":
    main()
