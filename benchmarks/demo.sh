#!/usr/bin/env bash
# Run the built-in demo and keep its table and JSON, with the machine it ran on.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d)
.venv/bin/edgekit demo -o "$out" -q | tee benchmarks/results/demo-table.txt
cp "$out/demo-results.json" benchmarks/results/demo-results.json
.venv/bin/python -c "import json, edgekit.bench.worker as w; print(json.dumps(w.environment(), indent=2))" \
    > benchmarks/results/demo-machine.json
rm -rf "$out"
