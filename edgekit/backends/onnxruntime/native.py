"""onnxruntime_perf_test: its command line, and its output parsed into edgekit's run fields.

It prints seconds and milliseconds, percentiles in newer versions; no raw samples.
"""

from __future__ import annotations

import re
from typing import Any

from edgekit.errors import EdgekitError

_NUM = r"([-+0-9.eE]+)"


def _find(pattern: str, text: str) -> float | None:
    match = re.search(pattern, text)
    return float(match.group(1)) if match else None


def parse_ort_perf_test(text: str) -> dict[str, Any]:
    """Fields from onnxruntime_perf_test output."""
    mean = _find(r"Average inference time cost:\s*" + _NUM + r"\s*ms", text) or _find(
        r"Average time cost:\s*" + _NUM + r"\s*ms", text
    )
    if mean is None:
        raise EdgekitError(
            "onnxruntime_perf_test printed no average time; it failed or was interrupted.", hint=text.strip()[-500:]
        )
    session_s = _find(r"Session creation time cost:\s*" + _NUM + r"\s*s", text)
    pct = {p: _find(rf"P{p} Latency is\s*" + _NUM + r"\s*sec", text) for p in (50, 90, 99)}
    peak = _find(r"Peak working set size:\s*" + _NUM + r"\s*bytes", text)
    count = _find(r"Total inference requests:\s*" + _NUM, text) or _find(r"Total iterations:\s*" + _NUM, text)
    return {
        "init_ms": session_s * 1e3 if session_s is not None else None,
        "first_inference_ms": None,
        "latency_ms": {
            "mean": mean,
            "std": None,
            "n": int(count) if count else None,
            "min": _s_to_ms(_find(r"Min Latency is\s*" + _NUM, text)),
            "max": _s_to_ms(_find(r"Max Latency is\s*" + _NUM, text)),
            **{f"p{p}": _s_to_ms(v) for p, v in pct.items()},
        },
        "tool_memory_mb": {"overall": peak / 2**20, "kind": "peak working set"} if peak else None,
        "tool": "onnxruntime_perf_test",
    }


def _s_to_ms(value: float | None) -> float | None:
    return value * 1e3 if value is not None else None


def command(tool: str, model: str, threads: int, runs: int, warmup: int) -> list[str]:
    # ONNX Runtime's POSIX telemetry is off (edgekit/__init__.py says why)
    return [
        "env",
        "ORT_DISABLE_TELEMETRY=1",
        tool,
        "-m",
        "times",
        "-r",
        str(runs),
        "-x",
        str(threads),
        "-I",
        model,
        "/dev/null",
    ]
