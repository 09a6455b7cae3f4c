"""TFLite's int8 FULLY_CONNECTED against its dynamic-range one at MiniLM's shapes: the floor under tflite-int8's speed.

Six MiniLM feed-forward blocks' products (64 tokens, 384 -> 1536 -> 384, no activation: nothing but the layers)
converted from Keras three ways: dynamic-range (int8 weights, activations quantized per row on the fly), full
integer with float I/O (one QUANTIZE in, one DEQUANTIZE out) and full integer with int8 I/O (nothing but the
FULLY_CONNECTED ops). And the attention's products, which tflite-int8 keeps float: six MiniLM attentions (12 heads,
64 tokens, 32 per head: scores, softmax, weighted values), float against full integer (int8 BATCH_MATMUL of two
activations). Timed in this process, interleaved, 1 thread (XNNPACK), median of 300 calls per round, 5 rounds;
each ratio is the median round's, against the first file of its kind.

    .venv/bin/python benchmarks/tflite_fc_kernels.py   # -> benchmarks/results/tflite-fc-kernels.PROFILE.json
"""

from __future__ import annotations

import json
import time

import numpy as np
from machine import machine, result_file

TOKENS, HIDDEN, FFN, BLOCKS, HEADS, ROUNDS, CALLS = 64, 384, 1536, 6, 12, 5, 300


def _convert(tf, model, calibration, full: bool, int8_io: bool = False) -> bytes:
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if full:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = calibration
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if int8_io:
        converter.inference_input_type = converter.inference_output_type = tf.int8
    return converter.convert()


def _calibration(shapes: list[tuple[int, ...]]):
    rng = np.random.default_rng(0)
    return lambda: ([rng.normal(size=(1, *shape)).astype(np.float32) for shape in shapes] for _ in range(16))


def _fully_connected() -> dict[str, bytes]:
    import tensorflow as tf

    inp = tf.keras.Input((TOKENS, HIDDEN), batch_size=1)
    x = inp
    for _ in range(BLOCKS):
        x = tf.keras.layers.Dense(HIDDEN)(tf.keras.layers.Dense(FFN)(x))
    model = tf.keras.Model(inp, x)
    calibration = _calibration([(TOKENS, HIDDEN)])
    dynamic = tf.lite.TFLiteConverter.from_keras_model(model)
    dynamic.optimizations = [tf.lite.Optimize.DEFAULT]
    return {"dynamic-range": dynamic.convert(), "int8, float I/O": _convert(tf, model, calibration, True),
            "int8, int8 I/O": _convert(tf, model, calibration, True, int8_io=True)}  # fmt: skip


def _attention_products() -> dict[str, bytes]:
    import tensorflow as tf

    shape = (HEADS, TOKENS, HIDDEN // HEADS)
    q, k, v = (tf.keras.Input(shape, batch_size=1) for _ in range(3))
    x = q
    for _ in range(BLOCKS):
        scores = tf.keras.layers.Lambda(lambda a: tf.matmul(a[0], a[1], transpose_b=True))([x, k])
        x = tf.keras.layers.Lambda(lambda a: tf.matmul(a[0], a[1]))([tf.keras.layers.Softmax()(scores), v])
    model = tf.keras.Model([q, k, v], x)
    calibration = _calibration([shape] * 3)
    return {"attention float": _convert(tf, model, calibration, False),
            "attention int8": _convert(tf, model, calibration, True)}  # fmt: skip


def _timed(files: dict[str, bytes]) -> list[dict]:
    """Each file's median call time per round, interleaved; the ratios are against the first file."""
    from ai_edge_litert.interpreter import Interpreter

    interpreters = {}
    for label, flatbuffer in files.items():
        it = Interpreter(model_content=flatbuffer, num_threads=1)
        it.allocate_tensors()
        for detail in it.get_input_details():
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
    first = float(np.median(next(iter(rounds.values()))))
    return [
        {
            "file": label,
            "ops": sorted({op["op_name"] for op in interpreters[label]._get_ops_details()}),
            "p50_ms": round(float(np.median(ms)), 3),
            "rounds_ms": [round(m, 3) for m in ms],
            "speed_vs_first": round(first / float(np.median(ms)), 3),
        }
        for label, ms in rounds.items()
    ]


def main() -> None:
    from ai_edge_litert import __version__ as litert_version

    rows = _timed(_fully_connected()) + _timed(_attention_products())
    document = {
        "what": __doc__.splitlines()[0],
        "shapes": {"tokens": TOKENS, "hidden": HIDDEN, "ffn": FFN, "blocks": BLOCKS, "heads": HEADS},
        "machine": {**machine(), "runtime_versions": {"ai_edge_litert": litert_version}},
        "rows": rows,
    }
    result_file("tflite-fc-kernels").write_text(json.dumps(document, indent=2) + "\n")
    for r in rows:
        print(f"{r['file']:18s} {r['p50_ms']:.3f} ms  x{r['speed_vs_first']} the first of its kind  {r['ops']}")


if __name__ == "__main__":
    main()
