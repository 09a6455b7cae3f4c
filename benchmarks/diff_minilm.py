"""edgekit diff on the demo's MiniLM sentiment classifier: how many of its 38 Linear layers each runtime's file
matches, the first divergent layer of int8 files made without the per-layer fallback (kept as .rejected when
they fail the export's gate), and the time it takes for 100 test tweets.

    .venv/bin/python benchmarks/diff_minilm.py [--work DIR] [--targets T,T]   # DIR: reuse its exports

Writes benchmarks/results/diff-minilm.json; named targets replace their rows (each row names its machine).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from machine import machine

ROOT = Path(__file__).resolve().parent.parent
TARGETS = (
    "onnx-fp32",
    "onnx-int8",
    "onnx-int8-dynamic",
    "tflite-fp32",
    "tflite-int8",
    "openvino-fp32",
    "openvino-int8",
    "executorch-fp32",
    "executorch-int8",
    "pytorch-mobile",
    "pytorch-mobile-int8",
)
SAMPLES = 100


def main() -> None:
    from edgekit.errors import EdgekitError
    from edgekit.exporter import export
    from edgekit.fallback import FallbackOptions
    from edgekit.layerdiff import diff
    from edgekit.progress import Progress
    from edgekit.spec import parse_input_specs
    from edgekit_demo import zoo_text
    from edgekit_demo.demo import _cached_sentiment_weights
    from edgekit_demo.demo_steps import CLASSIFIER, TEST_DATA

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, help="a folder with this script's earlier exports to reuse")
    parser.add_argument("--targets", default=",".join(TARGETS), help="comma-separated targets (default: all)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="edgekit-diff-minilm-"))
    progress = Progress()
    weights = _cached_sentiment_weights(progress)
    inputs = parse_input_specs(zoo_text.SENTIMENT_INPUTS)
    tok = zoo_text.minilm_dir()
    rows = []
    here = machine()
    for target in args.targets.split(","):
        rejected = None
        try:
            artifact = _exported(work, target) or export(
                CLASSIFIER, target, work, calib="builtin:tweets:validation", weights=weights, inputs=inputs,
                tokenizer=tok, fallback=FallbackOptions(enabled=False), progress=progress,
            ).artifact  # fmt: skip
        except EdgekitError as e:  # a file that failed its gate is kept as .rejected: the case diff is for
            artifact, rejected = _exported(work, target), e.message
            if artifact is None:
                rows.append({"target": target, "error": e.message})
                continue
        started = time.perf_counter()
        report = diff(
            artifact, TEST_DATA, reference=CLASSIFIER, reference_weights=weights, reference_inputs=inputs,
            tokenizer=tok, samples=SAMPLES, progress=progress,
        )  # fmt: skip
        seconds = time.perf_counter() - started
        first, worst = report.first_divergent, report.worst_added
        linear = [r for r in report.layers if r.kind == "Linear"]
        ranked = sorted((r for r in report.layers if r.added_error), key=lambda r: -(r.added_error or 0.0))
        snr = [r.metrics["snr_db"] for r in report.layers if r.compared and r.metrics["snr_db"] is not None]
        rows.append(
            {
                "target": target,
                "file": artifact.name,
                "export_gate": "rejected" if rejected or ".rejected." in artifact.name else "passed",
                "seconds": round(seconds, 1),
                "linear_layers": len(linear),
                "compared": sum(r.compared for r in linear),
                "compared_share": round(sum(r.compared for r in linear) / len(linear), 4),
                "matched_share": round(sum(r.artifact_layer is not None for r in linear) / len(linear), 4),
                "first_divergent": first.layer if first else None,
                "first_divergent_snr_db": first.metrics["snr_db"] if first else None,
                "first_divergent_median_channel_snr_db": first.metrics["median_channel_snr_db"] if first else None,
                "most_added_error": worst.layer if worst else None,
                "top5_added_error": [r.layer for r in ranked[:5]],
                "lowest_snr_db": min(snr, default=None),
                "not_compared": {r.layer: r.unmatched for r in report.layers if not r.compared},
                "folded": [r.layer for r in report.layers if r.folded_scale is not None],
                "notes": report.notes,
                "machine": here,
            }
        )
        print(json.dumps(rows[-1]))
    out = ROOT / "benchmarks" / "results" / "diff-minilm.json"
    kept = json.loads(out.read_text())["rows"] if out.exists() else []
    measured = {r["target"] for r in rows}
    result = {
        "what": __doc__.split("\n\n")[0].replace("\n", " "),
        "samples": SAMPLES,
        "rows": sorted(
            [r for r in kept if r["target"] not in measured] + rows, key=lambda r: TARGETS.index(r["target"])
        ),
    }
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(out)


def _exported(work: Path, target: str) -> Path | None:
    """The file an earlier run (or the failed export just now) left: passed, else rejected."""
    for pattern in (
        f"*-{target}.onnx",
        f"*-{target}.tflite",
        f"*-{target}.rejected.onnx",
        f"*-{target}.rejected.tflite",
        f"*-{target}.pte",
        f"*-{target}.rejected.pte",
        f"*-{target}.ptl",
        f"*-{target}.rejected.ptl",
    ):
        found = sorted(work.glob(pattern))
        if found:
            return found[0]
    return None


if __name__ == "__main__":
    main()
