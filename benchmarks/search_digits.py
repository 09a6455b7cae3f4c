"""`edgekit search` on the digits CNN for two device profiles (x86-avx2, android-arm64): every target that exports
and runs here and that each profile takes, with ONNX Runtime's fusion on and off, each file evaluated on the 449
test digits in its runtime and benchmarked on this machine; budget: 1 point of accuracy. Run in a fresh process
from an empty cache (the wall time a user waits, imports and worker start-up included; goal: 5 minutes on 2 cores),
then again from its cache (the resume). Then random and TPE with the same budget (6 trials per device profile),
each on a fresh cache: wall time, and per device the trial at which each found its choice and whether that is
the grid's choice.

    .venv/bin/python benchmarks/search_digits.py   # -> benchmarks/results/search-digits.json
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import machine

ROOT = Path(__file__).resolve().parents[1]
EDGEKIT = str(Path(sys.executable).with_name("edgekit"))
DEVICES = ("x86-avx2", "android-arm64")


def _search(work: Path, out: str, *extra: str) -> tuple[float, dict]:
    args = [EDGEKIT, "search", "edgekit_demo.zoo:digits_cnn", "--weights", "cnn.pt",
            "--input", "image:float32:batchx1x8x8", "--calib", "builtin:digits:train", "--data", "builtin:digits:test",
            "--max-drop", "1", "-q", "-o", out, *[a for d in DEVICES for a in ("--device", d)], *extra]  # fmt: skip
    t0 = time.perf_counter()
    done = subprocess.run(args, cwd=work, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"edgekit search failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return seconds, json.loads((work / out / "search.json").read_text())


def _summary(result: dict) -> dict:
    rows = result["trials"]
    return {
        "trials": len(rows),
        "space_size": result["space_size"],
        "failed": {r["name"]: r["error"] for r in rows if r["status"] == "failed"},
        "same_file": sum("same_file_as" in r for r in rows),
        "front": result["front"],
        "choices": {d: c["trial"] for d, c in result["choices"].items()},
        "chosen_figures": {
            d: {k: r[k] for k in ("size_bytes", "accuracy_drop_pts", "p50_ms", "p90_ms")}
            for d, c in result["choices"].items()
            for r in rows
            if r["name"] == c["trial"]
        },
        "steps": result["steps"],
    }


def _found(result: dict, grid: dict) -> dict:
    """Per device: at which of its trials (1-based, in the order they ran) the strategy met its choice, and
    whether that choice is the full grid's."""
    found = {}
    for device, choice in result["choices"].items():
        mine = [r["name"] for r in result["trials"] if r["device"] == device]
        found[device] = {
            "trial_of_choice": mine.index(choice["trial"]) + 1,
            "trials": len(mine),
            "grid_choice": choice["trial"] == grid["choices"].get(device, {}).get("trial"),
        }
    return {"found": found}


def main() -> None:
    from edgekit_demo import zoo

    work = Path(tempfile.mkdtemp(prefix="edgekit-search-"))
    x, y, _, _ = zoo.digits_split()
    zoo.save_weights(zoo.train(zoo.digits_cnn(), x, y, epochs=4), work / "cnn.pt")
    cold, grid = _search(work, "grid")
    warm, again = _search(work, "grid")
    sampled_s, sampled = _search(work, "random", "--strategy", "random", "--trials", "6")
    tpe_s, tpe = _search(work, "tpe", "--strategy", "tpe", "--trials", "6")
    result = {
        "what": __doc__.split("\n\n")[0].replace("\n", " "),
        "machine": machine(),
        "grid": {"seconds": round(cold, 1), **_summary(grid)},
        "grid_again_from_cache": {"seconds": round(warm, 1), "steps": again["steps"]},
        "random_6_per_device": {"seconds": round(sampled_s, 1), **_summary(sampled), **_found(sampled, grid)},
        "tpe_6_per_device": {"seconds": round(tpe_s, 1), **_summary(tpe), **_found(tpe, grid)},
    }
    path = ROOT / "benchmarks" / "results" / "search-digits.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
