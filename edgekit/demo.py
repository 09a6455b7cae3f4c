"""The built-in demo: a CNN trained on scikit-learn digits, exported to every ONNX target,
each file checked for parity and accuracy in ONNX Runtime, and compared in one table."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from edgekit.artifact import prepare_out_dir, write_json_atomic
from edgekit.catalog import targets
from edgekit.catalog.availability import availability
from edgekit.progress import Progress
from edgekit.runners import open_runner


def _p50_ms(runner, feed, runs: int = 50) -> float:
    runner.infer(feed)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        runner.infer(feed, check=False)
        times.append((time.perf_counter() - start) * 1e3)
    return float(np.median(times))


def run_demo(out_dir: str | Path, progress: Progress) -> list[dict]:
    from edgekit import zoo
    from edgekit.exporter import export
    from edgekit.spec import parse_input_spec

    out = prepare_out_dir(out_dir)
    with progress.step("train a CNN on scikit-learn digits"):
        x_train, y_train, x_test, y_test = zoo.digits_split()
        model = zoo.train(zoo.digits_cnn(), x_train, y_train, epochs=6)
        weights = zoo.save_weights(model, out / "digits_cnn.pt")
        calib = out / "digits_calib.npz"
        np.savez(calib, image=x_train[:256], labels=y_train[:256])
    rows = []
    for target in targets().values():
        if target.runtime != "onnxruntime" or not availability(target).exports_here:
            continue
        progress.info(f"[bold]{target.name}[/]")
        result = export("edgekit.zoo:digits_cnn", target.name, out, calib=calib, weights=weights,
                        inputs=(parse_input_spec(zoo.DIGITS_INPUT),), progress=progress)
        with open_runner(result.artifact) as runner:
            logits = np.concatenate([runner.infer({"image": x_test[i:i + 64]})["output"]
                                     for i in range(0, len(x_test), 64)])
            latency = _p50_ms(runner, {"image": x_test[:1]})
        parity = result.parity.outputs[0]
        rows.append({"target": target.name, "file": result.artifact.name, "size_bytes": result.sidecar["size_bytes"],
                     "scheme": result.sidecar["quantization"].get("scheme_name"),
                     "cosine": parity.cosine, "top1_agreement": parity.top1,
                     "accuracy": zoo.accuracy(logits, y_test), "p50_ms_batch1": latency})
    _print_table(rows, progress)
    write_json_atomic(out / "demo-results.json", {"model": "digits_cnn", "test_samples": len(y_test), "rows": rows})
    progress.info(f"results: {out / 'demo-results.json'}")
    return rows


def _print_table(rows: list[dict], progress: Progress) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="digits CNN, every ONNX target (accuracy on held-out digits, in ONNX Runtime)")
    for col in ("target", "size", "scheme", "cosine", "top-1 agree", "accuracy", "p50 ms (batch 1)"):
        table.add_column(col, justify="right" if col not in ("target", "scheme") else "left")
    for r in rows:
        table.add_row(r["target"], f"{r['size_bytes'] / 1024:.0f} KiB", r["scheme"] or "-", f"{r['cosine']:.5f}",
                      f"{r['top1_agreement']:.3f}", f"{r['accuracy']:.3f}", f"{r['p50_ms_batch1']:.3f}")
    Console(width=max(110, Console().width)).print(table)
