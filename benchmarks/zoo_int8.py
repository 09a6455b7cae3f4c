"""The int8 targets of the transformer families, after a short fine-tune on real data: each encoder family
(edgekit_demo.zoo_families, hidden size 64, 64-token inputs) is fine-tuned on 2,000 training tweets, exported
to every int8 target that runs here with the default gate and per-layer fallback (calibration: 200 training
tweets), and scored in its own runtime on 500 test tweets against the PyTorch source: accuracy drop in points,
or the refusal's first line. The image families (ViT and three keras.applications CNNs, 32x32 RGB) are trained
the same way on the digits upscaled from 8x8 (3 epochs) and scored on the 449 test digits.

    .venv/bin/python benchmarks/zoo_int8.py [family ...] [--targets T,T]   # -> benchmarks/results/zoo-int8.json

Named families (and targets) replace their rows in the results; the other rows stay.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from machine import machine

ROOT = Path(__file__).resolve().parents[1]
TARGETS = (
    "onnx-int8",
    "onnx-int8-dynamic",
    "tflite-int8",
    "tflite-dynamic",
    "openvino-int8",
    "executorch-int8",
    "pytorch-mobile-int8",
)
KERAS_TARGETS = ("onnx-int8", "onnx-int8-dynamic", "tflite-int8", "tflite-dynamic", "openvino-int8")
TRAIN, CALIB, TEST, IMAGE_EPOCHS = 2000, 200, 500, 3


def _row(family: str, source: Path, target: str, work: Path, calib: Path, test: Path, inputs=(), options=None) -> dict:
    from edgekit.errors import EdgekitError, first_line
    from edgekit.evaluation import evaluate
    from edgekit.exporter import export

    t0 = time.perf_counter()
    try:
        result = export(source, target, work / f"{family}-{target}", calib=calib, inputs=inputs, options=options)
        report = evaluate(result.artifact, test, reference=source)
    except EdgekitError as e:
        return {"family": family, "target": target, "outcome": first_line(e, 300),
                "seconds": round(time.perf_counter() - t0, 1)}  # fmt: skip
    kept = (result.sidecar["quantization"].get("fallback") or {}).get("float_layers") or []
    return {
        "family": family,
        "target": target,
        "outcome": "exported",
        "route": " -> ".join(step["tool"] for step in result.sidecar["route"] if step.get("tool")),
        "accuracy": round(report.metrics["accuracy"], 4),
        "source_accuracy": round(report.reference["accuracy"], 4),
        "drop_pts": round(100 * (report.reference["accuracy"] - report.metrics["accuracy"]), 1),
        "kept_float": len(kept),
        "size_mb": round(result.size_bytes / 1e6, 2),
        "seconds": round(time.perf_counter() - t0, 1),
    }


def _digits(path: Path, name: str, family: str) -> tuple[Path, Path]:
    """Calibration (200 training digits) and test files for an image input called `name`: NCHW for ViT, NHWC
    in the application's pixel range for the Keras CNNs."""
    import numpy as np

    from edgekit_demo.zoo import digits_rgb
    from edgekit_demo.zoo_families import keras_app_digits

    x_train, _, x_test, y_test = digits_rgb(32) if family == "vit" else keras_app_digits(family)
    np.savez(path / f"{name}-calib.npz", **{name: x_train[:CALIB]})
    np.savez(path / f"{name}-test.npz", **{name: x_test, "labels": y_test})
    return path / f"{name}-calib.npz", path / f"{name}-test.npz"


def _trained(family: str, work: Path) -> tuple[Path, tuple[str, ...], tuple[Path, Path]]:
    """The family trained on its data: (source, targets, (calibration, test) data)."""
    from edgekit.sources import load
    from edgekit_demo.datasets import write_tweets_csv
    from edgekit_demo.zoo_families import ENCODERS, build_family, build_keras_app

    if family in ENCODERS:
        data = write_tweets_csv(work / "calib.csv", "train", CALIB), write_tweets_csv(work / "test.csv", "test", TEST)
        return build_family(family, work / family, tweets=TRAIN), TARGETS, data
    if family == "vit":
        source = build_family(family, work / family, digits=True, epochs=IMAGE_EPOCHS)
        return source, TARGETS, _digits(work, "pixel_values", family)
    source = build_keras_app(family, work / f"{family}.keras", digits_epochs=IMAGE_EPOCHS)
    name = load(source).signature.inputs[0].name
    return source, KERAS_TARGETS, _digits(work, name, family)


def main(families: list[str], only: tuple[str, ...] = ()) -> None:
    from edgekit_demo.zoo_families import ENCODERS, INPUTS, KERAS_APPS

    work = Path(tempfile.mkdtemp(prefix="edgekit-zoo-int8-"))
    path = ROOT / "benchmarks" / "results" / "zoo-int8.json"
    partial = path.exists() and bool(families or only)
    earlier = json.loads(path.read_text()) if partial else {}
    rows, here = earlier.get("rows", []), machine()
    for family in families or (*ENCODERS, "vit", *KERAS_APPS):
        t0 = time.perf_counter()
        source, targets, (calib, test) = _trained(family, work)
        targets = tuple(t for t in targets if t in only) if only else targets
        rows = [r for r in rows if r["family"] != family or r["target"] not in targets]
        print(f"{family}: trained in {time.perf_counter() - t0:.0f} s", flush=True)
        for target in targets:
            inputs = INPUTS if family in ENCODERS else ()
            # a row re-run on another machine than the table's names its own
            rows.append({**_row(family, source, target, work, calib, test, inputs), "machine": here})
            print(rows[-1], flush=True)
        _write(path, rows, earlier.get("machine", here))  # after each family: a crash later keeps the rest


def _write(path: Path, rows: list[dict], machine: dict) -> None:
    result = {
        "what": __doc__.split("\n\n")[0].replace("\n", " "),
        "machine": machine,
        "settings": {
            "fine_tune_tweets": TRAIN,
            "epochs": 2,
            "calibration_samples": CALIB,
            "test_tweets": TEST,
            "image_epochs": IMAGE_EPOCHS,
        },
        "rows": rows,
    }
    path.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("families", nargs="*")
    parser.add_argument("--targets", default="", help="comma-separated targets to re-run (default: all)")
    args = parser.parse_args()
    main(args.families, tuple(filter(None, args.targets.split(","))))
