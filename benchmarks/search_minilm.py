"""`edgekit search` on the demo's MiniLM classifier for this machine's CPU profile, budget 0.3 points of accuracy
on the 1,000 test tweets: the int8 targets that have given the fastest files here (ONNX Runtime dynamic and
static with their options, tflite-dynamic, OpenVINO's two int8 targets, executorch-int8) as an exhaustive grid,
then random and TPE with 4 trials each, every strategy from an empty cache and with one step at a time (the
benchmarks do not share the 2 cores with an export). Per strategy: wall time, the trial at which it met its
choice, whether that is the grid's choice, and its choice's p50 against the grid's.

    .venv/bin/python benchmarks/search_minilm.py   # -> benchmarks/results/search-minilm.json
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from machine import machine
from search_digits import EDGEKIT, ROOT, _found, _summary

TARGETS = (
    "onnx-int8-dynamic",
    "onnx-int8",
    "tflite-dynamic",
    "openvino-int8",
    "openvino-int8-weights",
    "executorch-int8",
)
SPACE = f"targets: [{', '.join(TARGETS)}]\n"
SAMPLED = 4


def _search(work: Path, source: list[str], out: str, *extra: str) -> tuple[float, dict]:
    import subprocess

    args = [EDGEKIT, "search", *source, "--space", "space.yaml", "--max-drop", "0.3", "--jobs", "1", "-q",
            "-o", out, *extra]  # fmt: skip
    t0 = time.perf_counter()
    done = subprocess.run(args, cwd=work, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if done.returncode not in (0, 1):  # 1: no trial met the budgets (search.json is written)
        raise SystemExit(f"edgekit search failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return seconds, json.loads((work / out / "search.json").read_text())


def _p50_of_choice(result: dict) -> dict:
    by_name = {r["name"]: r for r in result["trials"]}
    return {d: by_name[c["trial"]]["p50_ms"] for d, c in result["choices"].items()}


def main() -> None:
    from edgekit.progress import SILENT
    from edgekit_demo import zoo_text
    from edgekit_demo.datasets import write_tweets_csv
    from edgekit_demo.demo import _cached_sentiment_weights

    work = Path(tempfile.mkdtemp(prefix="edgekit-search-minilm-"))
    (work / "space.yaml").write_text(SPACE)
    calib = write_tweets_csv(work / "calib.csv", "validation", 256)
    data = write_tweets_csv(work / "test.csv", "test")
    inputs = [a for spec in zoo_text.SENTIMENT_INPUTS for a in ("--input", spec)]
    weights, tokenizer = str(_cached_sentiment_weights(SILENT)), str(zoo_text.minilm_dir())
    source = ["edgekit_demo.zoo_text:minilm_sentiment", "--weights", weights, *inputs, "--tokenizer", tokenizer,
              "--calib", str(calib), "--data", str(data)]  # fmt: skip
    grid_s, grid = _search(work, source, "grid")
    runs = {"grid": {"seconds": round(grid_s, 1), **_summary(grid), "choice_p50_ms": _p50_of_choice(grid)}}
    for strategy in ("random", "tpe"):
        seconds, result = _search(work, source, strategy, "--strategy", strategy, "--trials", str(SAMPLED))
        runs[f"{strategy}_{SAMPLED}"] = {
            "seconds": round(seconds, 1),
            **_summary(result),
            **_found(result, grid),
            "choice_p50_ms": _p50_of_choice(result),
        }
    result = {
        "what": __doc__.split("\n\n")[0].replace("\n", " "),
        "machine": machine(),
        "space": SPACE.strip(),
        **runs,
    }
    path = ROOT / "benchmarks" / "results" / "search-minilm.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
