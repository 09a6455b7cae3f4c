"""`edgekit search` with compression in its space, on the demo's fine-tuned MiniLM-L6 teacher (a Hugging Face
folder) for this machine's CPU profile, budget 0.3 points of accuracy on the 1,000 test tweets: the teacher and
two 3-layer students distilled from it (full feed-forward width and half of it: `compression:` with
`student_width: [0.5, 1.0]`), each to onnx-int8-dynamic and tflite-dynamic, as a grid, one step at a time. Per
trial: the compression, the target, the accuracy drop against the teacher, p50; the choice and the front.

    .venv/bin/python benchmarks/search_minilm_compression.py   # -> benchmarks/results/search-minilm-compression.json

The teacher comes from the demo's cache (built on first use: about 5 minutes).
"""

from __future__ import annotations

import json
from pathlib import Path

from machine import machine
from search_digits import ROOT, _summary
from search_minilm import _search

SPACE = """targets: [onnx-int8-dynamic, tflite-dynamic]
compression:
  - {method: distill, data: train.csv, student_layers: 3, student_width: [0.5, 1.0], epochs: 2, lr: 0.0001}
"""


def main() -> None:
    import tempfile

    from edgekit.progress import SILENT
    from edgekit_demo.datasets import write_tweets_csv
    from edgekit_demo.demo import DISTILL_TEXTS, _cached_distillation
    from edgekit_demo.demo_steps import HF_INPUTS

    teacher, _ = _cached_distillation(SILENT)
    work = Path(tempfile.mkdtemp(prefix="edgekit-search-compression-"))
    (work / "space.yaml").write_text(SPACE)
    write_tweets_csv(work / "train.csv", "train", DISTILL_TEXTS)
    calib = write_tweets_csv(work / "calib.csv", "validation", 256)
    data = write_tweets_csv(work / "test.csv", "test")
    inputs = [a for spec in HF_INPUTS for a in ("--input", spec)]
    seconds, result = _search(work, [str(teacher), *inputs, "--calib", str(calib), "--data", str(data)], "grid")
    trials = [
        {k: r.get(k) for k in ("name", "target", "compress", "status", "accuracy_drop_pts", "p50_ms", "size_bytes")}
        for r in result["trials"]
    ]
    out = {
        "what": __doc__.split("\n\n")[0].replace("\n", " "),
        "machine": machine(),
        "space": SPACE.strip(),
        "seconds": round(seconds, 1),
        **_summary(result),
        "trial_rows": trials,
    }
    path = ROOT / "benchmarks" / "results" / "search-minilm-compression.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
