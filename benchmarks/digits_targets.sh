#!/usr/bin/env bash
# The digits CNN (trained here in seconds) exported to every target that runs on this machine, then
# benchmarked in one interleaved run (fresh process per repetition), so the ratios compare like with like.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
.venv/bin/python - "$work" <<'PY'
import sys, numpy as np, torch
from edgekit_demo import zoo
x, y, _, _ = zoo.digits_split()
torch.manual_seed(0)
zoo.save_weights(zoo.train(zoo.digits_cnn(), x, y, epochs=4), f"{sys.argv[1]}/cnn.pt")
np.savez(f"{sys.argv[1]}/calib.npz", image=x[:256])
PY
targets="onnx-fp32 onnx-int8 tflite-fp32 tflite-int8 pytorch-mobile pytorch-mobile-int8 executorch-fp32 executorch-int8"
for t in $targets; do
  .venv/bin/edgekit export edgekit_demo.zoo:digits_cnn --weights "$work/cnn.pt" --input image:float32:batchx1x8x8 \
      --calib "$work/calib.npz" --target "$t" -o "$work/out" -q
done
.venv/bin/edgekit benchmark "$work"/out/*.onnx "$work"/out/*.tflite "$work"/out/*.ptl "$work"/out/*.pte \
    --processes 5 --min-runs 200 --min-time 1 --json benchmarks/results/digits-targets.json \
    | tee benchmarks/results/digits-targets.txt
# keep the summaries, not the ~10^5 raw samples per file (22 MB)
.venv/bin/python - <<'PY'
import json
path = "benchmarks/results/digits-targets.json"
data = json.load(open(path))
for run in data:
    run.pop("samples_ms", None)
json.dump(data, open(path, "w"), indent=1)
PY
rm -rf "$work"
