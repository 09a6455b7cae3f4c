"""tflite-int16x8 on the demo's MiniLM classifier (litert-torch, ai-edge-quantizer: int16 activations and int8
weights on the linear ops, the word-embedding table int8 weight-only), exported with the defaults (parity gate and
per-layer fallback on 256 validation tweets), scored on the 1,000 test tweets in LiteRT against the source and
timed in one `edgekit benchmark` run (1 thread, batch 1, sequence 64, 5 fresh processes).

    .venv/bin/python benchmarks/minilm_int16x8.py   # -> benchmarks/results/minilm-int16x8.json
"""

from __future__ import annotations

from minilm_efficiency import ROOT
from minilm_static_int8 import measure

VARIANTS = [("tflite-int16x8", "tflite-int16x8", [])]


def main() -> None:
    result = ROOT / "benchmarks" / "results" / "minilm-int16x8.json"
    measure(VARIANTS, None, result, __doc__.splitlines()[0])


if __name__ == "__main__":
    main()
