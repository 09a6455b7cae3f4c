"""The harness's A/A check: the MiniLM classifier's onnx-fp32 file against a byte-identical copy of itself,
in 10 separate `edgekit benchmark --aa` invocations (1 thread, batch 1, 5 rounds each). Goal: the ratio
within 1 % of 1.0 in at least 9 of 10 invocations.

    .venv/bin/python benchmarks/aa_check.py                  # -> benchmarks/results/aa-check.json
    .venv/bin/python benchmarks/aa_check.py --max-time 45    # adaptive: rounds until the ratio is known to
                                                             # +-0.5 % or 45 s -> results/aa-check-adaptive.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from machine import machine

ROOT = Path(__file__).resolve().parent.parent
EDGEKIT = [sys.executable, "-m", "edgekit"]
INVOCATIONS = 10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-time", type=float, help="adaptive rounds, at most this many seconds per invocation")
    args = parser.parse_args()
    adaptive = ["--max-time", str(args.max_time), "--target-ci", "0.5"] if args.max_time else []
    from edgekit.progress import SILENT
    from edgekit_demo import zoo_text
    from edgekit_demo.demo import _cached_sentiment_weights

    out = Path(tempfile.mkdtemp(prefix="edgekit-aa-"))
    inputs = [arg for spec in zoo_text.SENTIMENT_INPUTS for arg in ("--input", spec)]
    source = ["edgekit_demo.zoo_text:minilm_sentiment", "--weights", str(_cached_sentiment_weights(SILENT))]
    subprocess.run([*EDGEKIT, "export", *source, *inputs, "-t", "onnx-fp32", "-o", str(out), "-q"], check=True)
    model = out / "minilm-sentiment-onnx-fp32.onnx"
    ratios = []
    for k in range(INVOCATIONS):
        result = out / f"aa-{k}.json"
        settings = ["--processes", "5", "--min-runs", "50", "--json", str(result), "-q", *adaptive]
        subprocess.run([*EDGEKIT, "benchmark", str(model), "--aa", *settings], check=True, capture_output=True)
        run = json.loads(result.read_text())[1]
        ratios.append({"invocation": k + 1, **run["ratio_to_first"]})
        print(f"{k + 1:2d}: ratio {ratios[-1]['ratio']:.4f}  95% {ratios[-1]['ci95']}")
    within = sum(abs(r["ratio"] - 1) <= 0.01 for r in ratios)
    env = json.loads((out / "aa-0.json").read_text())[0]["environment"]
    summary = {
        "what": __doc__.splitlines()[0],
        "goal": "ratio within 1 % of 1.0 in at least 9 of 10 invocations",
        "settings": "5 rounds" + (f", then adaptive to +-0.5 % for at most {args.max_time:g} s" if adaptive else ""),
        "within_1_percent": within,
        "met": within >= 9,
        "machine": machine(env, "onnxruntime"),
        "invocations": ratios,
    }
    name = "aa-check-adaptive.json" if adaptive else "aa-check.json"
    (ROOT / "benchmarks" / "results" / name).write_text(json.dumps(summary, indent=2) + "\n")
    print(f"within 1 %: {within}/{INVOCATIONS}")


if __name__ == "__main__":
    main()
