"""ONNX Runtime's static int8 with each way of setting activation ranges (`--calibration minmax|percentile|mse`) on
zoo families trained on real data (benchmarks/zoo_int8.py's training, data and scoring): accuracy
change against the source in points, layers the per-layer fallback kept float, export seconds.

    .venv/bin/python benchmarks/calibration_methods.py [family ...]   # -> benchmarks/results/calibration-methods.json
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import machine
from zoo_int8 import ROOT, _row, _trained

METHODS = ("minmax", "percentile", "mse")
FAMILIES = ("mobilenetv2", "efficientnet", "vit", "distilbert")


def main(families: list[str]) -> None:
    from edgekit_demo.zoo_families import ENCODERS, INPUTS

    work = Path(tempfile.mkdtemp(prefix="edgekit-calibration-"))
    rows = []
    for family in families or FAMILIES:
        t0 = time.perf_counter()
        source, _, (calib, test, _) = _trained(family, work)  # the parity gate only
        print(f"{family}: trained in {time.perf_counter() - t0:.0f} s", flush=True)
        for method in METHODS:
            inputs = INPUTS if family in ENCODERS else ()
            row = _row(family, source, "onnx-int8", work / method, (calib, test, None), inputs, {"calibration": method})
            rows.append({**row, "calibration": method})
            print(rows[-1], flush=True)
    result = {
        "what": __doc__.split("\n\n")[0].replace("\n", " "),
        "machine": machine(),
        "rows": rows,
    }
    path = ROOT / "benchmarks" / "results" / "calibration-methods.json"
    path.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
