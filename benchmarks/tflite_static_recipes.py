"""Google's ai-edge-quantizer as a static path for TFLite, weighed on the demo's MiniLM classifier: the
litert-torch tflite-fp32 file (64 tokens, batch 1) quantized with int8 weights and int8 or int16 activations,
on every op it supports or on the linear ones only (FULLY_CONNECTED, BATCH_MATMUL: what edgekit's
tflite-int16x8 does), with activation ranges as its Quantizer.calibrate sets them (a moving average of each
sample's min and max) or over the whole calibration set; each calibrated on 200 validation tweets, then
scored on the 1,000 test tweets in LiteRT against the float file: accuracy drop, top-1 agreement, size, time.

    .venv/bin/python benchmarks/tflite_static_recipes.py   # -> benchmarks/results/tflite-static-recipes.json
"""

from __future__ import annotations

import itertools
import json
import subprocess
import tempfile
import time
from pathlib import Path
from platform import python_version

import numpy as np
from machine import machine
from minilm_efficiency import EDGEKIT, ROOT

ACTIVATION_BITS = (8, 16)
OPS = ("all", "linear")
RANGES = ("moving-average", "min-max")
INPUTS = ("input_ids:int64:1x64", "attention_mask:int64:1x64")


def _tokens(split: str, n: int) -> dict[str, np.ndarray]:
    from transformers import AutoTokenizer

    from edgekit_demo.datasets import tweets
    from edgekit_demo.zoo_text import minilm_dir

    texts, labels = tweets(split, n)
    tok = AutoTokenizer.from_pretrained(str(minilm_dir()))
    enc = tok(list(texts), padding="max_length", truncation=True, max_length=64, return_tensors="np")
    return {"args_0": enc["input_ids"].astype(np.int32), "args_1": enc["attention_mask"].astype(np.int32),
            "label": np.asarray(labels)}  # fmt: skip


def _predict(path: Path, data: dict[str, np.ndarray]) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_path=str(path), num_threads=1).get_signature_runner()
    feeds = range(len(data["label"]))
    rows = [runner(args_0=data["args_0"][i : i + 1], args_1=data["args_1"][i : i + 1]) for i in feeds]
    return np.concatenate([next(iter(r.values())) for r in rows])


def _quantize(float_file: Path, path: Path, feeds: list[dict], bits: int, ops: str, ranges: str) -> None:
    from ai_edge_quantizer import calibrator, quantizer, recipe_manager
    from ai_edge_quantizer.qtyping import TFLOperationName
    from ai_edge_quantizer.utils import qsv_utils

    recipe = recipe_manager.RecipeManager()
    linear = (TFLOperationName.FULLY_CONNECTED, TFLOperationName.BATCH_MATMUL)
    for op in (TFLOperationName.ALL_SUPPORTED,) if ops == "all" else linear:
        recipe.add_static_config(".*", op, activation_num_bits=bits, weight_num_bits=8)
    update = qsv_utils.moving_average_update if ranges == "moving-average" else qsv_utils.min_max_update
    measured = calibrator.Calibrator(float_file.read_bytes(), num_threads=2, qsv_update_func=update)
    measured.calibrate({"serving_default": feeds}, recipe)
    qt = quantizer.Quantizer(str(float_file), recipe.get_quantization_recipe())
    qt.quantize(measured.get_model_qsvs(), enable_progress_bar=False, enable_progress_report=False).export_model(
        str(path), overwrite=True
    )


def main() -> None:
    from edgekit.progress import SILENT
    from edgekit_demo.demo import _cached_sentiment_weights

    out = Path(tempfile.mkdtemp(prefix="edgekit-aeq-"))
    source = ["edgekit_demo.zoo_text:minilm_sentiment", "--weights", str(_cached_sentiment_weights(SILENT))]
    subprocess.run([*EDGEKIT, "export", *source, *[a for s in INPUTS for a in ("--input", s)], "-t", "tflite-fp32",
                    "-o", str(out), "-q"], check=True)  # fmt: skip
    float_file = out / "minilm-sentiment-tflite-fp32.tflite"
    calib, test = _tokens("validation", 200), _tokens("test", 1000)
    reference = _predict(float_file, test).argmax(1)
    float_accuracy = float((reference == test["label"]).mean())
    rows = []
    feeds = [{"args_0": calib["args_0"][i : i + 1], "args_1": calib["args_1"][i : i + 1]} for i in range(200)]
    for bits, ops, ranges in itertools.product(ACTIVATION_BITS, OPS, RANGES):
        started = time.perf_counter()
        path = out / f"a{bits}-{ops}-{ranges}.tflite"
        _quantize(float_file, path, feeds, bits, ops, ranges)
        seconds = time.perf_counter() - started
        predicted = _predict(path, test).argmax(1)
        accuracy = float((predicted == test["label"]).mean())
        rows.append({
            "activations": f"int{bits}", "ops": ops, "ranges": ranges,
            "size_mb": round(path.stat().st_size / 1e6, 2), "seconds": round(seconds, 1),
            "accuracy": round(accuracy, 4), "accuracy_drop_pts": round(100 * (float_accuracy - accuracy), 2),
            "top1_agreement": round(float((predicted == reference).mean()), 4),
        })  # fmt: skip
        print(rows[-1], flush=True)
    result_doc = {
        "what": __doc__.splitlines()[0],
        "machine": {**machine(), "python": python_version()},
        "float": {"size_mb": round(float_file.stat().st_size / 1e6, 2), "accuracy": round(float_accuracy, 4)},
        "rows": rows,
    }
    (ROOT / "benchmarks" / "results" / "tflite-static-recipes.json").write_text(json.dumps(result_doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
