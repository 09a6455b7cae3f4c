"""ExecuTorch executor_runner: its command line, and its output (total time of N executions) parsed."""

from __future__ import annotations

import re
from typing import Any

from edgekit.errors import EdgekitError

_NUM = r"([-+0-9.eE]+)"


def _find(pattern: str, text: str) -> float | None:
    match = re.search(pattern, text)
    return float(match.group(1)) if match else None


def parse_executor_runner(text: str) -> dict[str, Any]:
    """Fields from ExecuTorch's executor_runner: total time of N executions (mean only), load time if printed."""
    match = re.search(r"Model executed successfully (\d+) time\(s\) in " + _NUM + r" ms", text)
    if not match:
        raise EdgekitError(
            "executor_runner printed no 'Model executed successfully' line; it failed or was interrupted.",
            hint=text.strip()[-500:],
        )
    count, total = int(match.group(1)), float(match.group(2))
    return {
        "init_ms": _find(r"Model loaded in " + _NUM + r" ms", text),
        "first_inference_ms": None,
        "latency_ms": {
            "mean": total / count,
            "std": None,
            "n": count,
            "min": None,
            "max": None,
            "p50": None,
            "p90": None,
            "p99": None,
        },
        "tool_memory_mb": None,
        "tool": "executor_runner",
    }


def command(tool: str, model: str, threads: int, runs: int, warmup: int) -> list[str]:
    return [tool, f"--model_path={model}", f"--num_executions={runs}", f"--cpu_threads={threads}"]
