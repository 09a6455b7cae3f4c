"""TFLite benchmark_model: its command line, and its output parsed into edgekit's run fields.

It prints averages in microseconds; no raw samples.
"""

from __future__ import annotations

import re
from typing import Any

from edgekit.errors import EdgekitError

_NUM = r"([-+0-9.eE]+)"


def parse_tflite_benchmark(text: str) -> dict[str, Any]:
    """Fields from TFLite benchmark_model output (timings in us)."""
    timings = re.search(
        r"Inference timings in us: Init: "
        + _NUM
        + r", First inference: "
        + _NUM
        + r", Warmup \(avg\): "
        + _NUM
        + r", Inference \(avg\): "
        + _NUM,
        text,
    )
    if not timings:
        raise EdgekitError(
            "benchmark_model printed no 'Inference timings' line; it failed or was interrupted.",
            hint=text.strip()[-500:],
        )
    init_us, first_us, _, avg_us = (float(g) for g in timings.groups())
    runs = re.findall(
        r"count=(\d+) first="
        + _NUM
        + r" curr="
        + _NUM
        + r" min="
        + _NUM
        + r" max="
        + _NUM
        + r" avg="
        + _NUM
        + r" std="
        + _NUM,
        text,
    )
    last = runs[-1] if runs else None  # the timed runs come after the warm-up line
    memory = re.search(
        r"(Peak memory footprint|Memory footprint delta from the start of the tool) \(MB\): "
        r"init=" + _NUM + r" overall=" + _NUM,
        text,
    )
    out: dict[str, Any] = {
        "init_ms": init_us / 1e3,
        "first_inference_ms": first_us / 1e3,
        "latency_ms": {
            "mean": avg_us / 1e3,
            "std": float(last[6]) / 1e3 if last else None,
            "min": float(last[3]) / 1e3 if last else None,
            "max": float(last[4]) / 1e3 if last else None,
            "n": int(last[0]) if last else None,
            "p50": None,
            "p90": None,
            "p99": None,
        },
        "tool": "benchmark_model",
    }
    if memory:
        out["tool_memory_mb"] = {
            "init": float(memory.group(2)),
            "overall": float(memory.group(3)),
            "kind": "peak" if memory.group(1).startswith("Peak") else "delta from tool start",
        }
    return out


def command(tool: str, model: str, threads: int, runs: int, warmup: int) -> list[str]:
    return [tool, f"--graph={model}", f"--num_threads={threads}", f"--num_runs={runs}", f"--warmup_runs={warmup}"]
