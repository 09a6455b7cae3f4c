"""The demo's MiniLM sentiment classifier on every target that runs here, in one interleaved benchmark.

Runs `edgekit demo` (which exports every target with the int8 fallback gated on validation tweets and
evaluates each file in its own runtime on the 1,000 test tweets), then times every file it wrote in one
interleaved `edgekit benchmark` run (1 thread, batch 1), and joins the two into
benchmarks/results/minilm-targets.PROFILE.{json,txt}, PROFILE this machine's device profile (the
minilm-targets.{json,txt} without one are the table of 2026-11, on an AMD EPYC with AVX-512 VNNI, before the
full-integer work).

    .venv/bin/python benchmarks/minilm_targets.py [--demo-out DIR]   # DIR: reuse a finished demo run
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from machine import result_file

EDGEKIT = [sys.executable, "-m", "edgekit"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo-out", type=Path, help="a finished `edgekit demo -o DIR` to reuse")
    args = parser.parse_args()
    demo_out = args.demo_out or Path(tempfile.mkdtemp(prefix="edgekit-minilm-"))
    if not (demo_out / "demo-results.json").exists():
        subprocess.run([*EDGEKIT, "demo", "-o", str(demo_out), "-q"], check=True)
    demo = json.loads((demo_out / "demo-results.json").read_text())["classifier"]
    rows = [r for r in demo["targets"] if "file" in r]
    # onnx-fp32 first: the benchmark table's speed-up column is against the first artifact
    rows.sort(key=lambda r: r["target"] != "onnx-fp32")
    bench_json = demo_out / "minilm-benchmark.json"
    files = [str(demo_out / r["file"]) for r in rows]
    settings = ["--threads", "1", "--batch", "1", "--min-runs", "50", "--json", str(bench_json), "-q"]
    subprocess.run([*EDGEKIT, "benchmark", *files, *settings], check=True)
    runs = {Path(r["artifact"]).name: r for r in json.loads(bench_json.read_text())}
    base = runs[rows[0]["file"]]["latency_ms"]["p50"]
    joined = []
    for r in rows:
        run = runs[r["file"]]
        joined.append(
            {
                "target": r["target"],
                "size_mb": round(r["size_bytes"] / 1e6, 2),
                "accuracy": round(r["accuracy"], 4),
                "f1_macro": round(r["f1_macro"], 4),
                "drop_pts": round(r["accuracy_drop_pts"], 2),
                "p50_ms": round(run["latency_ms"]["p50"], 2),
                "p90_ms": round(run["latency_ms"]["p90"], 2),
                "speedup_vs_onnx_fp32": round(base / run["latency_ms"]["p50"], 2),
                "peak_rss_mb": round(run["peak_rss_mb"], 1),
                "float_layers": r.get("float_layers", []),
            }
        )
    failed = [{"target": r["target"], "error": r["error"]} for r in demo["targets"] if "error" in r]
    env = next(iter(runs.values()))["environment"]
    result = {"source": demo["source"], "rows": joined, "failed": failed, "environment": env}
    out = result_file("minilm-targets")
    out.write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        f"MiniLM sentiment classifier, {demo['data']} (1,000 tweets); benchmark: 1 thread, batch 1, seq 64, "
        f"interleaved; CPU: {env.get('cpu_model', '?')} ({', '.join(env.get('cpu_flags') or [])})",
        f"source (torch): accuracy {demo['source']['accuracy']:.4f}, macro-F1 {demo['source']['f1_macro']:.4f}",
        "",
        f"{'target':22} {'size MB':>8} {'acc':>7} {'F1':>7} {'drop':>6} {'p50 ms':>7} {'x fp32':>7} "
        f"{'RSS MB':>7}  kept",
    ]
    for j in joined:
        lines.append(
            f"{j['target']:22} {j['size_mb']:8.1f} {j['accuracy']:7.4f} {j['f1_macro']:7.4f} {j['drop_pts']:+6.2f} "
            f"{j['p50_ms']:7.2f} {j['speedup_vs_onnx_fp32']:7.2f} {j['peak_rss_mb']:7.0f}  {len(j['float_layers'])}"
        )
    lines += [f"{f['target']:22} failed: {f['error']}" for f in failed]
    out.with_suffix(".txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
