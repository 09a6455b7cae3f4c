"""How close MiniLM runs to this machine's limit: the demo classifier as plain (unfused) onnx-fp32, fused
onnx-fp32, unfused and fused onnx-int8-dynamic and static onnx-int8, in one interleaved `edgekit benchmark`
run (1 and 2 threads, batch 1, sequence 64, 3 fresh processes): each run's arithmetic work, achieved
GFLOP/s, efficiency against the measured GEMM peak, and speed ratio to the plain fp32 file. Then fused fp32
and int8-dynamic exported with a free sequence length, timed at 64 (padded, as the demo feeds) and at 34
tokens, the median length of the 1,000 test tweets with MiniLM's tokenizer (`--seq-len`): what padding costs.

    .venv/bin/python benchmarks/minilm_efficiency.py   # -> benchmarks/results/minilm-efficiency.json
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from machine import machine

ROOT = Path(__file__).resolve().parent.parent
EDGEKIT = [sys.executable, "-m", "edgekit"]


MEDIAN_TWEET_TOKENS = 34  # median tokenized length of builtin:tweets:test (MiniLM's tokenizer, [CLS]/[SEP] included)


VARIANTS = [  # (label, target, export options); the first is the reference of every ratio
    ("fp32 unfused", "onnx-fp32", ["--no-fuse"]),
    ("fp32 fused", "onnx-fp32", []),
    ("int8-dynamic unfused", "onnx-int8-dynamic", ["--no-fuse"]),
    ("int8-dynamic fused", "onnx-int8-dynamic", []),
    ("int8 static", "onnx-int8", []),
]


def export(out: Path, specs: tuple[str, ...], variants: list[tuple[str, str, list[str]]]) -> dict[str, str]:
    """Each variant exported into its own folder; returns file -> label."""
    from edgekit.catalog import get_target
    from edgekit.progress import SILENT
    from edgekit_demo.datasets import write_tweets_csv
    from edgekit_demo.demo import _cached_sentiment_weights
    from edgekit_demo.zoo_text import minilm_dir

    inputs = [arg for spec in specs for arg in ("--input", spec)]
    source = ["edgekit_demo.zoo_text:minilm_sentiment", "--weights", str(_cached_sentiment_weights(SILENT)), *inputs]
    # parity (and the int8 fallback it drives) on real validation tweets, as the demo exports
    calib = write_tweets_csv(out.parent / "calib.csv", "validation", 256)
    source += ["--calib", str(calib), "--tokenizer", str(minilm_dir())]
    files = {}
    for label, target, options in variants:
        folder = out / label.replace(" ", "-")
        subprocess.run([*EDGEKIT, "export", *source, "-t", target, "-o", str(folder), "-q", *options], check=True)
        files[str(folder / f"minilm-sentiment-{target}{get_target(target).suffix}")] = label
    return files


def bench(files: list[str], result: Path, extra: list[str]) -> list[dict]:
    settings = ["--processes", "3", "--json", str(result), "-q", *extra]
    subprocess.run([*EDGEKIT, "benchmark", *files, *settings], check=True, stdout=subprocess.DEVNULL)
    return json.loads(result.read_text())


def row(run: dict, labels: dict[str, str]) -> dict:
    keep = ("macs", "int8_flops", "float_flops", "achieved_gflops", "peak_gflops", "efficiency")
    ratio = run.get("ratio_to_first")
    return {
        "variant": labels[run["artifact"]],
        "file": Path(run["artifact"]).name,
        "size_mb": round(run["size_bytes"] / 1e6, 2),
        "speedup_vs_first": round(ratio["ratio"], 3) if ratio else 1.0,
        "threads": run["threads"],
        "batch": run["batch"],
        "inputs": run["inputs"],
        "p50_ms": round(run["latency_ms"]["p50"], 3),
        **{k: run["work"][k] for k in keep},
    }


def main() -> None:
    from edgekit_demo import zoo_text

    out = Path(tempfile.mkdtemp(prefix="edgekit-eff-"))
    files = export(out / "fixed", zoo_text.SENTIMENT_INPUTS, VARIANTS)
    runs = bench(list(files), out / "bench.json", ["--threads", "1,2"])
    free = export(out / "free", ("input_ids:int64:batchxseq", "attention_mask:int64:batchxseq"), VARIANTS[1:4:2])
    unpadded = [
        {**row(r, free), "seq_len": seq}
        for seq in (64, MEDIAN_TWEET_TOKENS)
        for r in bench(list(free), out / f"seq{seq}.json", ["--seq-len", str(seq)])
    ]
    rows = [row(r, files) for r in runs]
    env = runs[0]["environment"]
    result = {
        "what": __doc__.splitlines()[0],
        "machine": machine(env, "onnxruntime"),
        "rows": rows,
        "unpadded": unpadded,
    }
    path = ROOT / "benchmarks" / "results" / "minilm-efficiency.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    for r in rows + unpadded:
        print(
            f"{r['variant']:22s} threads={r['threads']} seq={r['inputs']['input_ids'][1]} p50 {r['p50_ms']:.2f} ms "
            f"x{r['speedup_vs_first']} {r['size_mb']} MB {r['achieved_gflops']:.0f} GFLOP/s η {r['efficiency']}"
        )


if __name__ == "__main__":
    main()
