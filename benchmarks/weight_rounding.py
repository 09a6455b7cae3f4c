"""Weight rounding before static onnx-int8 on the zoo's small image models (keras.applications MobileNetV2,
MobileNetV3-Small and EfficientNetB0, `weights=None`, and ViT, trained on the digits upscaled to 32x32 as in
zoo_int8.py): each exported with the defaults (parity gate and per-layer fallback; 200 training digits to
calibrate) three ways: weights rounded to nearest, with `--bias-correction`, and with `--adaround`; scored on the
449 test digits in ONNX Runtime: accuracy drop in points, layers kept float, export seconds, and what each method
recorded.

    .venv/bin/python benchmarks/weight_rounding.py   # -> benchmarks/results/weight-rounding.json
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from machine import machine
from zoo_int8 import ROOT, _row, _trained

FAMILIES = ("mobilenetv2", "mobilenetv3", "efficientnet", "vit")
VARIANTS = {"nearest": {}, "bias correction": {"bias_correction": True}, "adaround": {"adaround": True}}


def _recorded(folder: Path, family: str, options: dict) -> dict:
    """What the export's sidecar says the method did (layers changed; AdaRound's median output error against
    rounding to nearest)."""
    for option in options:
        sidecar = next((folder / f"{family}-onnx-int8-{option}").glob("*.edgekit.json"))
        return {"method_notes": json.loads(sidecar.read_text())["quantization"][option]}
    return {}


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="edgekit-weight-rounding-"))
    rows = []
    for family in FAMILIES:
        source, _, (calib, test, _) = _trained(family, work)  # the parity gate only
        for variant, options in VARIANTS.items():
            folder = work / variant.replace(" ", "-")
            folder.mkdir(exist_ok=True)
            row = _row(family, source, "onnx-int8", folder, (calib, test, None), options=options)
            rows.append({**row, "rounding": variant, **_recorded(folder, family, options)})
            print(rows[-1], flush=True)
    result = {
        "what": __doc__.split("\n\n")[0].replace("\n", " "),
        "machine": machine(),
        "rows": rows,
    }
    (ROOT / "benchmarks" / "results" / "weight-rounding.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
