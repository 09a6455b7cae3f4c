"""Static int8 quantization of the MiniLM classifier with its activation ranges measured, then reused.

What one attempt of static onnx-int8's per-layer fallback costs with the ranges measured and with them reused
from ONNX Runtime's calibration cache (edgekit measures once per export, then reuses): the demo's MiniLM
classifier, exported to onnx-fp32 as the int8 route has it (fused), quantized with edgekit's static settings
(QDQ, MinMax, 200 validation tweets at batch 8) three times in one process: measured, reused, reused.

    .venv/bin/python benchmarks/calibration_cache.py   # -> benchmarks/results/calibration-cache.json
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from minilm_efficiency import ROOT, export

CALIBRATION = 200


def main() -> None:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    from edgekit.backends.onnxruntime.quantize import _Reader
    from edgekit.catalog.detect import cpu_model
    from edgekit.data import read_data
    from edgekit.dispatch import open_runner
    from edgekit.spec import Signature
    from edgekit_demo.datasets import write_tweets_csv
    from edgekit_demo.zoo_text import SENTIMENT_INPUTS, minilm_dir

    out = Path(tempfile.mkdtemp(prefix="edgekit-calib-"))
    (fp32,) = export(out, SENTIMENT_INPUTS, [("onnx-fp32", "onnx-fp32", [])])
    with open_runner(fp32) as runner:
        signature = Signature(runner.input_specs())
    csv = write_tweets_csv(out / "calibration.csv", "validation", CALIBRATION)
    data = read_data(csv, signature, minilm_dir())
    cache = out / "ranges.json"
    runs = []
    for attempt in range(3):
        t0 = time.perf_counter()
        quantize_static(
            fp32,
            out / f"attempt{attempt}.onnx",
            _Reader(data, 8),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            calibrate_method=CalibrationMethod.MinMax,
            calibration_cache_path=cache,
            extra_options={"ActivationSymmetric": True, "WeightSymmetric": True},
        )
        runs.append({"attempt": attempt, "ranges": "reused" if attempt else "measured",
                     "seconds": round(time.perf_counter() - t0, 2)})  # fmt: skip
    result = {
        "what": __doc__.splitlines()[0],
        "machine": {"cpu_model": cpu_model(), "cores": __import__("os").cpu_count()},
        "calibration_samples": CALIBRATION,
        "attempts": runs,
        "reused_over_measured": round(runs[1]["seconds"] / runs[0]["seconds"], 3),
    }
    path = ROOT / "benchmarks" / "results" / "calibration-cache.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
