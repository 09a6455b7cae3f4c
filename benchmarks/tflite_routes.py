"""PyTorch -> TFLite, the two routes side by side: litert-torch's lowering of the torch.export program, and
torch -> ONNX -> onnx2tf -> TFLite converter. For each model, tflite-fp32 through each route alone: the
conversion time, parity with the source on real inputs, the file's size, and latency in one interleaved
`edgekit benchmark` run (batch 1, 1 thread, 5 fresh processes each).

    .venv/bin/python benchmarks/tflite_routes.py   # -> benchmarks/results/tflite-routes.json
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
import time
from pathlib import Path

from machine import machine
from minilm_efficiency import ROOT, bench

ROUTES = {"litert-torch": "litert-torch", "onnx2tf": "onnx2tf + tf.lite.TFLiteConverter"}


def _only(route: str) -> None:
    """Register LiteRT with one PyTorch route: litert-torch's converter, or the ONNX edge (torch -> onnx -> tflite)."""
    from edgekit.backends import registry
    from edgekit.backends.litert import BACKEND

    keep = [c for c in BACKEND.converters if c.src == "keras" or c.tool == ROUTES[route]]
    registry.register(dataclasses.replace(BACKEND, converters=tuple(keep)))


def _models(work: Path) -> list[dict]:
    """(label, source, weights, inputs, data): MiniLM's sentiment classifier, the digits CNN, a small DistilBERT."""
    import numpy as np

    from edgekit.progress import SILENT
    from edgekit_demo import zoo, zoo_families, zoo_text
    from edgekit_demo.datasets import write_tweets_csv
    from edgekit_demo.demo import _cached_sentiment_weights

    tweets = write_tweets_csv(work / "tweets.csv", "train", 64)
    x_train, y_train, _, _ = zoo.digits_split()
    cnn = zoo.save_weights(zoo.train(zoo.digits_cnn(), x_train, y_train, epochs=4), work / "cnn.pt")
    np.savez(work / "digits.npz", image=x_train[:128])
    distilbert = zoo_families.build_family("distilbert", work / "distilbert")
    return [
        {"label": "minilm-sentiment (seq 64)", "source": "edgekit_demo.zoo_text:minilm_sentiment",
         "weights": _cached_sentiment_weights(SILENT), "inputs": zoo_text.SENTIMENT_INPUTS,
         "tokenizer": zoo_text.minilm_dir(), "data": tweets},
        {"label": "digits-cnn", "source": "edgekit_demo.zoo:digits_cnn", "weights": cnn,
         "inputs": (zoo.DIGITS_INPUT,), "data": work / "digits.npz"},
        {"label": "distilbert-small (hidden 64, seq 64)", "source": distilbert, "inputs": zoo_families.INPUTS,
         "data": tweets},
    ]  # fmt: skip


def main() -> None:
    from edgekit.backends import registry
    from edgekit.errors import EdgekitError, first_line
    from edgekit.exporter import export

    work = Path(tempfile.mkdtemp(prefix="edgekit-routes-"))
    rows, files = [], {}
    for model in _models(work):
        for route in ROUTES:
            _only(route)
            out = work / f"{len(rows)}-{route}"
            t0 = time.perf_counter()
            try:
                result = export(
                    model["source"], "tflite-fp32", out, calib=model["data"], inputs=model["inputs"],
                    weights=model.get("weights"), tokenizer=model.get("tokenizer"),
                )  # fmt: skip
                parity, outcome = result.parity.to_json()["outputs"][0], "parity passed"
                files[str(result.artifact)] = (model["label"], route)
            except EdgekitError as e:
                parity, outcome = {}, first_line(e, 200)
            finally:
                registry.unregister("litert")
            rows.append(
                {
                    "model": model["label"],
                    "route": route,
                    "convert_s": round(time.perf_counter() - t0, 1),
                    "outcome": outcome,
                    "cosine": parity.get("cosine"),
                    "max_abs": parity.get("max_abs"),
                }
            )
            print(rows[-1])
    runs = bench(list(files), work / "bench.json", ["--processes", "5", "--min-time", "1"])
    for run in runs:
        label, route = files[run["artifact"]]
        row = next(r for r in rows if r["model"] == label and r["route"] == route)
        row.update(size_mb=round(run["size_bytes"] / 1e6, 2), p50_ms=round(run["latency_ms"]["p50"], 3))
    env = runs[0]["environment"]
    result = {
        "what": __doc__.split("\n\n")[0].replace("\n", " "),
        "machine": machine(env),
        "settings": {"target": "tflite-fp32", "threads": 1, "batch": 1, "processes": 5, "min_time_s": 1},
        "rows": rows,
    }
    path = ROOT / "benchmarks" / "results" / "tflite-routes.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    for r in rows:
        print(
            f"{r['model']:38s} {r['route']:13s} convert {r['convert_s']:6.1f} s  cosine {r['cosine'] or '-':<10} "
            f"p50 {r.get('p50_ms', '-')} ms  {r.get('size_mb', '-')} MB  {r['outcome']}"
        )


if __name__ == "__main__":
    main()
