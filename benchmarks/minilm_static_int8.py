"""Static int8 on the demo's MiniLM classifier, with and without smoothing, fusion and channel groups:
onnx-fp32, the dynamic int8 files (ONNX Runtime's fused QAttention, with and without
`--no-unfuse-layernorm`, TFLite's dynamic range), static onnx-int8 with `--no-unfuse-layernorm` (ONNX
Runtime's fused SkipLayerNormalization kept), `--no-fuse` (the unfused graph), `--no-smooth` and the defaults
(smoothed, MultiHeadAttention with its projections quantized, SkipLayerNormalization written as Add +
LayerNormalization), tflite-int8 through ONNX with `--no-channel-groups`, channel groups and `--smoothquant`, each
exported with the defaults (parity gate and per-layer fallback on 256 validation tweets), then scored on the
1,000 test tweets in its own runtime against the source and timed in one interleaved `edgekit benchmark` run
(1 thread, batch 1, sequence 64, 5 fresh processes).

    .venv/bin/python benchmarks/minilm_static_int8.py   # -> benchmarks/results/minilm-static-int8.json
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from machine import machine
from minilm_efficiency import ROOT, bench, export

VARIANTS = [  # (label, target, export options); the first is the reference of every ratio
    ("onnx-fp32", "onnx-fp32", []),
    ("onnx-int8-dynamic --no-unfuse-layernorm", "onnx-int8-dynamic", ["--no-unfuse-layernorm"]),
    ("onnx-int8-dynamic", "onnx-int8-dynamic", []),
    ("onnx-int8 --no-unfuse-layernorm", "onnx-int8", ["--no-unfuse-layernorm"]),
    ("onnx-int8 --no-fuse", "onnx-int8", ["--no-fuse"]),
    ("onnx-int8 --no-smooth", "onnx-int8", ["--no-smooth"]),
    ("onnx-int8", "onnx-int8", []),
    ("tflite-dynamic", "tflite-dynamic", []),
    ("tflite-int8 --no-channel-groups", "tflite-int8", ["--no-channel-groups"]),
    # the ONNX route's file, as the other two tflite-int8 rows (an option keeps it); with no option a PyTorch
    # transformer's tflite-int8 now comes from litert-torch (benchmarks/tflite_int8_speed.py measures that one)
    ("tflite-int8", "tflite-int8", ["--keep-float", "(non-linear ops)"]),
    ("tflite-int8 --smoothquant", "tflite-int8", ["--smoothquant"]),
]


def measure(variants: list[tuple[str, str, list[str]]], dynamic_label: str | None, result: Path, what: str) -> None:
    """Export, score on the test tweets and time `variants` (the first is the reference of every ratio; speed and
    size are also compared with `dynamic_label`'s file), writing `result`."""
    from edgekit.evaluation import evaluate
    from edgekit.progress import SILENT
    from edgekit.sidecar import read_sidecar
    from edgekit_demo import zoo_text
    from edgekit_demo.demo import _cached_sentiment_weights

    out = Path(tempfile.mkdtemp(prefix="edgekit-static-"))
    files = export(out, zoo_text.SENTIMENT_INPUTS, variants)
    runs = bench(list(files), out / "bench.json", ["--threads", "1", "--processes", "5", "--min-time", "1"])
    source = "edgekit_demo.zoo_text:minilm_sentiment"
    weights = _cached_sentiment_weights(SILENT)
    dynamic = next((r for r in runs if files[r["artifact"]] == dynamic_label), None)
    rows = []
    for run in runs:
        report = evaluate(run["artifact"], "builtin:tweets:test", reference=source, reference_weights=weights)
        sidecar = read_sidecar(Path(run["artifact"])).model_dump(mode="json")
        quantization, route = sidecar["quantization"], sidecar["route"]
        fallback = quantization.get("fallback") or {}
        # ONNX Runtime records it with the quantization, TFLite's ONNX route in its conversion step
        smoothing = quantization.get("smoothing") or next((s["smoothing"] for s in route if s.get("smoothing")), None)
        ratio = run.get("ratio_to_first")
        # PyTorch Mobile records them with its quantization notes, TFLite's ONNX route in its conversion step
        notes = next((s["quantization"] for s in route if isinstance(s.get("quantization"), dict)), {})
        groups = notes.get("channel_groups") or next(
            (s["channel_groups"] for s in route if s.get("channel_groups")), None
        )
        rows.append(
            {
                "variant": files[run["artifact"]],
                "size_mb": round(run["size_bytes"] / 1e6, 2),
                **({"size_vs_dynamic": round(run["size_bytes"] / dynamic["size_bytes"], 2)} if dynamic else {}),
                "p50_ms": round(run["latency_ms"]["p50"], 3),
                "speedup_vs_fp32": round(ratio["ratio"], 3) if ratio else 1.0,
                **(
                    {"speed_vs_dynamic": round(dynamic["latency_ms"]["p50"] / run["latency_ms"]["p50"], 3)}
                    if dynamic
                    else {}
                ),
                "accuracy": round(report.metrics["accuracy"], 4),
                "accuracy_drop_pts": round(100 * (report.reference["accuracy"] - report.metrics["accuracy"]), 2),
                "f1_drop_pts": round(100 * (report.reference["f1_macro"] - report.metrics["f1_macro"]), 2),
                "layers_kept_float": len(fallback.get("float_layers") or []),
                "route": " -> ".join(step["tool"] for step in route if step.get("tool")),
                "float_op_types": next((s["float_op_types"] for s in route if s.get("float_op_types")), {}),
                "smoothing": smoothing,
                **({"channel_groups": len(groups["layers"]) if isinstance(groups, dict) else groups} if groups else {}),
            }
        )
    env = runs[0]["environment"]
    document = {
        "what": what,
        "machine": machine(env, "runtime_versions"),
        "source_accuracy": round(report.reference["accuracy"], 4),
        "rows": rows,
    }
    result.write_text(json.dumps(document, indent=2) + "\n")
    for r in rows:
        print(
            f"{r['variant']:36s} {r['size_mb']:6.2f} MB p50 {r['p50_ms']:.2f} ms x{r['speedup_vs_fp32']} first; "
            f"acc {r['accuracy']} ({r['accuracy_drop_pts']:+.2f} pt) kept {r['layers_kept_float']}"
        )


def main() -> None:
    result = ROOT / "benchmarks" / "results" / "minilm-static-int8.json"
    measure(VARIANTS, "onnx-int8-dynamic", result, __doc__.splitlines()[0])


if __name__ == "__main__":
    main()
