"""Static int8 on a Hugging Face MiniLM classifier folder (BertForSequenceClassification with its pooler: the
demo's distillation teacher, all-MiniLM-L6-v2 fine-tuned end to end on 2,000 training tweets), where static
onnx-int8 once lost the answers outside the layers the fallback controls (parity cosine 0.879): onnx-int8 with
the defaults (parity gate and per-layer fallback on 256 validation tweets, 64 tokens), scored on the 1,000 test
tweets in ONNX Runtime against the folder.

    .venv/bin/python benchmarks/minilm_folder_int8.py   # -> benchmarks/results/minilm-folder-int8.json
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from machine import machine
from zoo_int8 import ROOT

TARGETS = ("onnx-int8", "onnx-int8-dynamic", "openvino-int8")


def main() -> None:
    from edgekit.evaluation import evaluate
    from edgekit.exporter import export
    from edgekit.spec import parse_input_specs
    from edgekit_demo.datasets import write_tweets_csv
    from edgekit_demo.zoo_text import finetune_teacher

    work = Path(tempfile.mkdtemp(prefix="edgekit-minilm-folder-"))
    folder = finetune_teacher(work / "minilm-classifier")
    calib = write_tweets_csv(work / "calib.csv", "validation", 256)
    test = write_tweets_csv(work / "test.csv", "test")
    inputs = parse_input_specs(("input_ids:int64:1x64", "attention_mask:int64:1x64", "token_type_ids:int64:1x64"))
    rows = []
    for target in TARGETS:
        began = time.perf_counter()
        result = export(folder, target, work / target, calib=calib, inputs=inputs)
        report = evaluate(result.artifact, test, reference=folder)
        first = result.parity.outputs[0]
        rows.append({
            "target": target,
            "parity_cosine": round(first.cosine, 5),
            "top1_agreement": round(first.top1, 4) if first.top1 is not None else None,
            "accuracy": round(report.metrics["accuracy"], 4),
            "source_accuracy": round(report.reference["accuracy"], 4),
            "drop_pts": round(100 * (report.reference["accuracy"] - report.metrics["accuracy"]), 2),
            "f1_drop_pts": round(100 * (report.reference["f1_macro"] - report.metrics["f1_macro"]), 2),
            "kept_float": len((result.sidecar["quantization"].get("fallback") or {}).get("float_layers") or []),
            "size_mb": round(result.size_bytes / 1e6, 2),
            "seconds": round(time.perf_counter() - began, 1),
        })  # fmt: skip
        print(rows[-1], flush=True)
    document = {"what": __doc__.split("\n\n")[0].replace("\n", " "), "machine": machine(), "rows": rows}
    (ROOT / "benchmarks" / "results" / "minilm-folder-int8.json").write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    main()
