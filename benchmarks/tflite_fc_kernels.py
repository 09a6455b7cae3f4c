"""TFLite's int8 FULLY_CONNECTED against its dynamic-range one at MiniLM's shapes: the floor under tflite-int8's speed.

Six MiniLM feed-forward blocks' products (64 tokens, 384 -> 1536 -> 384, no activation: nothing but the layers)
converted from Keras three ways: dynamic-range (int8 weights, activations quantized per row on the fly), full
integer with float I/O (one QUANTIZE in, one DEQUANTIZE out) and full integer with int8 I/O (nothing but the
FULLY_CONNECTED ops). Timed in this process, interleaved, 1 thread (XNNPACK), median of 300 calls per round, 5
rounds; the ratio is the median round's.

    .venv/bin/python benchmarks/tflite_fc_kernels.py   # -> benchmarks/results/tflite-fc-kernels.json
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from machine import machine

ROOT = Path(__file__).resolve().parent.parent
TOKENS, HIDDEN, FFN, BLOCKS, ROUNDS, CALLS = 64, 384, 1536, 6, 5, 300


def _files() -> dict[str, bytes]:
    import tensorflow as tf

    inp = tf.keras.Input((TOKENS, HIDDEN), batch_size=1)
    x = inp
    for _ in range(BLOCKS):
        x = tf.keras.layers.Dense(HIDDEN)(tf.keras.layers.Dense(FFN)(x))
    model = tf.keras.Model(inp, x)
    rng = np.random.default_rng(0)

    def calibration():
        for _ in range(16):
            yield [rng.normal(size=(1, TOKENS, HIDDEN)).astype(np.float32)]

    def convert(full: bool, int8_io: bool) -> bytes:
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if full:
            converter.representative_dataset = calibration
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if int8_io:
            converter.inference_input_type = converter.inference_output_type = tf.int8
        return converter.convert()

    return {"dynamic-range": convert(False, False), "int8, float I/O": convert(True, False),
            "int8, int8 I/O": convert(True, True)}  # fmt: skip


def main() -> None:
    from ai_edge_litert.interpreter import Interpreter

    interpreters = {}
    for label, flatbuffer in _files().items():
        it = Interpreter(model_content=flatbuffer, num_threads=1)
        it.allocate_tensors()
        detail = it.get_input_details()[0]
        it.set_tensor(detail["index"], np.ones(detail["shape"], detail["dtype"]))
        interpreters[label] = it
    rounds: dict[str, list[float]] = {label: [] for label in interpreters}
    for _ in range(ROUNDS):
        for label, it in interpreters.items():
            for _ in range(10):
                it.invoke()
            times = []
            for _ in range(CALLS):
                start = time.perf_counter()
                it.invoke()
                times.append(time.perf_counter() - start)
            rounds[label].append(1e3 * float(np.median(times)))
    dynamic = float(np.median(rounds["dynamic-range"]))
    rows = [
        {
            "file": label,
            "ops": len(interpreters[label]._get_ops_details()),
            "p50_ms": round(float(np.median(ms)), 3),
            "rounds_ms": [round(m, 3) for m in ms],
            "speed_vs_dynamic": round(dynamic / float(np.median(ms)), 3),
        }
        for label, ms in rounds.items()
    ]
    from ai_edge_litert import __version__ as litert_version

    document = {
        "what": __doc__.splitlines()[0],
        "shapes": {"tokens": TOKENS, "hidden": HIDDEN, "ffn": FFN, "blocks": BLOCKS},
        "machine": {**machine(), "runtime_versions": {"ai_edge_litert": litert_version}},
        "rows": rows,
    }
    (ROOT / "benchmarks" / "results" / "tflite-fc-kernels.json").write_text(json.dumps(document, indent=2) + "\n")
    for r in rows:
        print(f"{r['file']:18s} {r['p50_ms']:.3f} ms  x{r['speed_vs_dynamic']} dynamic-range  ({r['ops']} ops)")


if __name__ == "__main__":
    main()
