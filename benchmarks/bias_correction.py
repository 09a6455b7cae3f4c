"""Bias correction before static onnx-int8 on the zoo's CNNs (keras.applications MobileNetV2, MobileNetV3-Small and
EfficientNetB0, `weights=None`, trained 3 epochs on the digits upscaled to 32x32 RGB, as in zoo_int8.py): each
exported with the defaults (parity gate and per-layer fallback; 200 training digits to calibrate) without and with
`--bias-correction`, scored on the 449 test digits in ONNX Runtime: accuracy drop in points, layers kept float.

    .venv/bin/python benchmarks/bias_correction.py   # -> benchmarks/results/bias-correction.json
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from machine import machine
from zoo_int8 import ROOT, _row, _trained

FAMILIES = ("mobilenetv2", "mobilenetv3", "efficientnet")


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="edgekit-bias-correction-"))
    rows = []
    for family in FAMILIES:
        source, _, (calib, test, _) = _trained(family, work)  # the parity gate only
        for corrected in (False, True):
            folder = work / ("corrected" if corrected else "plain")
            folder.mkdir(exist_ok=True)
            row = _row(family, source, "onnx-int8", folder, (calib, test, None), options={"bias_correction": corrected})
            rows.append({**row, "bias_correction": corrected})
            print(rows[-1], flush=True)
    result = {
        "what": __doc__.split("\n\n")[0].replace("\n", " "),
        "machine": machine(),
        "rows": rows,
    }
    (ROOT / "benchmarks" / "results" / "bias-correction.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
