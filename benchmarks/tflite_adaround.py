"""AdaRound on tflite-int8: the MobileNet-style PyTorch CNN of cnn_int8.py (edgekit_demo.zoo.digits_mobilenet,
depthwise convolutions, trained 10 epochs on the digits upscaled to 32x32) exported to tflite-int8 through ONNX
with the weights rounded to nearest (the default) and with `--adaround`, each with the defaults (parity gate and
per-layer fallback; 200 training digits to calibrate), scored on the 449 test digits in LiteRT against the
source: accuracy, and how far the int8 file's logits are from the source's on the 200 calibration digits (the
export's parity record).

    .venv/bin/python benchmarks/tflite_adaround.py   # -> benchmarks/results/tflite-adaround.json
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from cnn_int8 import _mobilenet
from machine import machine
from zoo_int8 import ROOT

SOURCE = "edgekit_demo.zoo:digits_mobilenet"
VARIANTS = {"nearest": {}, "adaround": {"adaround": True}}


def main() -> None:
    from edgekit.evaluation import evaluate
    from edgekit.exporter import export

    work = Path(tempfile.mkdtemp(prefix="edgekit-tflite-adaround-"))
    weights, inputs, calib, test = _mobilenet(work)
    rows = []
    for variant, options in VARIANTS.items():
        started = time.perf_counter()
        result = export(SOURCE, "tflite-int8", work / variant, calib=calib, weights=weights, inputs=inputs,
                        options=options)  # fmt: skip
        seconds = time.perf_counter() - started
        report = evaluate(result.artifact, test, reference=SOURCE, reference_weights=weights, reference_inputs=inputs)
        parity = result.parity.outputs[0]
        step = result.sidecar["route"][-1]
        kept = (result.sidecar["quantization"].get("fallback") or {}).get("float_layers") or []
        rows.append(
            {
                "variant": variant,
                "accuracy": round(report.metrics["accuracy"], 4),
                "accuracy_drop_pts": round(100 * (report.reference["accuracy"] - report.metrics["accuracy"]), 2),
                "calibration_cosine": round(parity.cosine, 5),
                "calibration_top1_agreement": round(parity.top1 or 0.0, 4),
                "calibration_max_abs_diff": round(parity.max_abs, 4),
                "layers_kept_float": len(kept),
                "export_s": round(seconds, 1),
                "adaround": step.get("adaround"),
            }
        )
        print(rows[-1])
    document = {"what": __doc__.splitlines()[0], "machine": machine(), "rows": rows}
    (ROOT / "benchmarks" / "results" / "tflite-adaround.json").write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    main()
