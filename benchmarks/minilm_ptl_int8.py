"""Static int8 PyTorch Mobile files of the demo's MiniLM classifier, with and without channel groups:
pytorch-mobile (fp32), pytorch-mobile-int8 with `--no-channel-groups` (one int8 scale per layer input and output,
the per-layer fallback keeping what fails the parity gate float) and with its default channel groups, each
exported with the defaults (parity gate and per-layer fallback on 256 validation tweets), then scored on the
1,000 test tweets in the lite interpreter against the source and timed in one interleaved `edgekit benchmark`
run (1 thread, batch 1, sequence 64, 5 fresh processes).

    .venv/bin/python benchmarks/minilm_ptl_int8.py   # -> benchmarks/results/minilm-ptl-int8.json
"""

from __future__ import annotations

from minilm_efficiency import ROOT
from minilm_static_int8 import measure

VARIANTS = [  # (label, target, export options); the first is the reference of every ratio
    ("pytorch-mobile", "pytorch-mobile", []),
    ("pytorch-mobile-int8 --no-channel-groups", "pytorch-mobile-int8", ["--no-channel-groups"]),
    ("pytorch-mobile-int8", "pytorch-mobile-int8", []),
]


if __name__ == "__main__":
    result = ROOT / "benchmarks" / "results" / "minilm-ptl-int8.json"
    measure(VARIANTS, None, result, __doc__.splitlines()[0])
