"""int8 on two CNNs, each against its own fp32 file: keras.applications' MobileNetV2 (`weights=None`, 32x32 RGB,
trained 3 epochs on the upscaled digits, as in zoo_int8.py) on ONNX Runtime and TFLite, and a MobileNet-style
PyTorch CNN (edgekit_demo.zoo.digits_mobilenet: a strided stem, inverted residual blocks with depthwise
convolutions and residual adds, a mean; the digits upscaled to 32x32, 10 epochs) on ONNX Runtime, TFLite,
PyTorch Mobile and ExecuTorch. Each file exported with the defaults (parity gate and per-layer fallback; 200
training digits to calibrate), scored on the 449 test digits in its own runtime, and every file timed in one
interleaved `edgekit benchmark` run (1 thread, batch 1, 3 fresh processes). Goal: each int8 file within 1 point
of the source and faster than its fp32 file.

    .venv/bin/python benchmarks/cnn_int8.py   # -> benchmarks/results/cnn-int8.json
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
from machine import machine
from minilm_efficiency import bench
from zoo_int8 import ROOT, _trained

KERAS = ("onnx-fp32", "onnx-int8", "tflite-fp32", "tflite-int8")
TORCH = (*KERAS, "pytorch-mobile", "pytorch-mobile-int8", "executorch-fp32", "executorch-int8")
FP32 = {"onnx-int8": "onnx-fp32", "tflite-int8": "tflite-fp32", "pytorch-mobile-int8": "pytorch-mobile",
        "executorch-int8": "executorch-fp32"}  # fmt: skip


def _mobilenet(work: Path) -> tuple[Path, tuple, Path, Path]:
    from edgekit.spec import parse_input_specs
    from edgekit_demo import zoo

    x_train, y_train, x_test, y_test = zoo.digits_upscaled(32)
    zoo.save_weights(zoo.train(zoo.digits_mobilenet(), x_train, y_train, epochs=10), work / "mobilenet.pt")
    np.savez(work / "mobilenet-calib.npz", image=x_train[:200])
    np.savez(work / "mobilenet-test.npz", image=x_test, labels=y_test)
    data = work / "mobilenet-calib.npz", work / "mobilenet-test.npz"
    return work / "mobilenet.pt", parse_input_specs(("image:float32:batchx1x32x32",)), *data


def main() -> None:
    from edgekit.evaluation import evaluate
    from edgekit.exporter import export

    work = Path(tempfile.mkdtemp(prefix="edgekit-cnn-int8-"))
    keras, _, (keras_calib, keras_test, _) = _trained("mobilenetv2", work)
    weights, inputs, calib, test = _mobilenet(work)
    models = {
        "MobileNetV2 (Keras)": (str(keras), KERAS, {"calib": keras_calib}, keras_test, None),
        "MobileNet-style CNN (PyTorch)": ("edgekit_demo.zoo:digits_mobilenet", TORCH,
                                   {"calib": calib, "weights": weights, "inputs": inputs}, test, weights),
    }  # fmt: skip
    rows, files = [], {}
    for name, (source, targets, common, data, reference_weights) in models.items():
        for target in targets:
            result = export(source, target, work / name.split()[0] / target, **common)
            report = evaluate(result.artifact, data, reference=source, reference_weights=reference_weights,
                              reference_inputs=common.get("inputs", ()))  # fmt: skip
            kept = (result.sidecar["quantization"].get("fallback") or {}).get("float_layers") or []
            drop = round(100 * (report.reference["accuracy"] - report.metrics["accuracy"]), 1)
            rows.append({"model": name, "target": target, "size_kb": round(result.size_bytes / 1e3, 1),
                         "accuracy": round(report.metrics["accuracy"], 4), "drop_pts": drop, "kept_float": len(kept),
                         "applied": result.sidecar["quantization"].get("applied")})  # fmt: skip
            files[str(result.artifact)] = len(rows) - 1
            print(rows[-1], flush=True)
    runs = bench(list(files), work / "bench.json", ["--threads", "1", "--min-time", "1"])
    for run in runs:
        rows[files[run["artifact"]]]["p50_ms"] = round(run["latency_ms"]["p50"], 4)
    for row in rows:
        fp32 = next((r for r in rows if r["model"] == row["model"] and r["target"] == FP32.get(row["target"])), None)
        if fp32:
            row["speedup_vs_own_fp32"] = round(fp32["p50_ms"] / row["p50_ms"], 2)
            row["goal_met"] = row["drop_pts"] <= 1.0 and row["speedup_vs_own_fp32"] > 1.0
    document = {"what": __doc__.split("\n\n")[0].replace("\n", " "), "machine": machine(), "rows": rows}
    (ROOT / "benchmarks" / "results" / "cnn-int8.json").write_text(json.dumps(document, indent=2) + "\n")
    for row in rows:
        print(row)


if __name__ == "__main__":
    main()
