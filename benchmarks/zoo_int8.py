"""The int8 targets of the transformer families, after a short fine-tune on real data: each encoder family
(edgekit_demo.zoo_families, hidden size 64, 64-token inputs) is fine-tuned on 2,000 training tweets, exported
to every int8 target that runs here with the default gate and per-layer fallback (calibration: 200 training
tweets), and scored in its own runtime on 500 test tweets against the PyTorch source: accuracy drop in points,
or the refusal's first line. The image families (ViT and three keras.applications CNNs, 32x32 RGB) are trained
the same way on the digits upscaled from 8x8 (3 epochs; the last 300 training digits held out), exported with the
accuracy gate too (`--eval` on the 300 held-out digits, `--max-drop 1`), tflite-int8 also with `--float-io`, and
scored on the 449 test digits.

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
FLOAT_IO = {"float_io": True}  # tflite-int8's int8 output can be too coarse for an image classifier's logits
MAX_DROP = 1.0  # the image families' accuracy gate on their held-out training digits (points)


def _row(
    family: str, source: Path, target: str, work: Path, data: tuple[Path, Path, Path | None], inputs=(), options=None
) -> dict:
    from edgekit.errors import EdgekitError, first_line
    from edgekit.evaluation import evaluate
    from edgekit.exporter import export
    from edgekit.fallback import FallbackOptions

    calib, test, validation = data
    gate = FallbackOptions(eval_data=validation, max_drop=MAX_DROP) if validation else FallbackOptions()
    t0 = time.perf_counter()
    try:
        out = work / f"{family}-{target}{'-' + '-'.join(options) if options else ''}"
        result = export(source, target, out, calib=calib, inputs=inputs, fallback=gate, options=options)
        report = evaluate(result.artifact, test, reference=source)
    except EdgekitError as e:
        return {"family": family, "target": target, **({"options": options} if options else {}),
                "outcome": first_line(e, 300), **({"hint": e.hint[:300]} if e.hint else {}),
                "seconds": round(time.perf_counter() - t0, 1)}  # fmt: skip
    kept = (result.sidecar["quantization"].get("fallback") or {}).get("float_layers") or []
    return {
        "family": family,
        "target": target,
        **({"options": options} if options else {}),
        "outcome": "exported",
        "route": " -> ".join(step["tool"] for step in result.sidecar["route"] if step.get("tool")),
        "accuracy": round(report.metrics["accuracy"], 4),
        "source_accuracy": round(report.reference["accuracy"], 4),
        "drop_pts": round(100 * (report.reference["accuracy"] - report.metrics["accuracy"]), 1),
        "kept_float": len(kept),
        "size_mb": round(result.size_bytes / 1e6, 2),
        "seconds": round(time.perf_counter() - t0, 1),
    }


def _digits(path: Path, name: str, family: str) -> tuple[Path, Path, Path]:
    """Calibration (200 training digits), test and validation (the training digits held out from fitting) files
    for an image input called `name`: NCHW for ViT, NHWC in the application's pixel range for the Keras CNNs."""
    import numpy as np

    from edgekit_demo.zoo import digits_rgb
    from edgekit_demo.zoo_families import DIGITS_VALIDATION, keras_app_digits

    x_train, y_train, x_test, y_test = digits_rgb(32) if family == "vit" else keras_app_digits(family)
    held = slice(-DIGITS_VALIDATION, None)
    np.savez(path / f"{name}-calib.npz", **{name: x_train[:CALIB]})
    np.savez(path / f"{name}-test.npz", **{name: x_test, "labels": y_test})
    np.savez(path / f"{name}-validation.npz", **{name: x_train[held], "labels": y_train[held]})
    return path / f"{name}-calib.npz", path / f"{name}-test.npz", path / f"{name}-validation.npz"


def _trained(family: str, work: Path) -> tuple[Path, tuple[str, ...], tuple[Path, Path, Path | None]]:
    """The family trained on its data: (source, targets, (calibration, test, validation) data); the encoders
    export with the default parity gate (no validation), the image families with the accuracy gate as well."""
    from edgekit.sources import load
    from edgekit_demo.datasets import write_tweets_csv
    from edgekit_demo.zoo_families import ENCODERS, build_family, build_keras_app

    if family in ENCODERS:
        calib = write_tweets_csv(work / "calib.csv", "train", CALIB)
        data = (calib, write_tweets_csv(work / "test.csv", "test", TEST), None)
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
        source, targets, data = _trained(family, work)
        targets = tuple(t for t in targets if t in only) if only else targets
        rows = [r for r in rows if r["family"] != family or r["target"] not in targets]
        print(f"{family}: trained in {time.perf_counter() - t0:.0f} s", flush=True)
        for target in targets:
            inputs = INPUTS if family in ENCODERS else ()
            # a row re-run on another machine than the table's names its own
            rows.append({**_row(family, source, target, work, data, inputs), "machine": here})
            print(rows[-1], flush=True)
            if target == "tflite-int8" and family not in ENCODERS:  # the classifier's logits as float32 too
                rows.append({**_row(family, source, target, work, data, options=FLOAT_IO), "machine": here})
                print(rows[-1], flush=True)
        _write(path, rows, earlier.get("machine", here))  # after each family: a crash later keeps the rest


def _write(path: Path, rows: list[dict], machine: dict) -> None:
    from edgekit_demo.zoo_families import DIGITS_VALIDATION

    result = {
        "what": __doc__.split("\n\n")[0].replace("\n", " "),
        "machine": machine,
        "settings": {
            "fine_tune_tweets": TRAIN,
            "epochs": 2,
            "calibration_samples": CALIB,
            "test_tweets": TEST,
            "image_epochs": IMAGE_EPOCHS,
            "image_gate": {"validation_digits": DIGITS_VALIDATION, "max_drop_pts": MAX_DROP},
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
