"""Parsers for the runtimes' own benchmark tools (run on adb devices): into edgekit's run fields.

TFLite `benchmark_model`, `onnxruntime_perf_test` and ExecuTorch's `executor_runner`.

TFLite `benchmark_model` prints averages in microseconds; `onnxruntime_perf_test` prints
seconds and milliseconds, and percentiles in newer versions. Neither gives raw samples.
"""
from __future__ import annotations

import re
from typing import Any

from edgekit.errors import EdgekitError

_NUM = r"([-+0-9.eE]+)"


def _find(pattern: str, text: str) -> float | None:
    match = re.search(pattern, text)
    return float(match.group(1)) if match else None


def parse_tflite_benchmark(text: str) -> dict[str, Any]:
    """Fields from TFLite benchmark_model output (timings in us)."""
    timings = re.search(r"Inference timings in us: Init: " + _NUM + r", First inference: " + _NUM +
                        r", Warmup \(avg\): " + _NUM + r", Inference \(avg\): " + _NUM, text)
    if not timings:
        raise EdgekitError("benchmark_model printed no 'Inference timings' line; it failed or was interrupted.",
                           hint=text.strip()[-500:])
    init_us, first_us, _, avg_us = (float(g) for g in timings.groups())
    runs = re.findall(r"count=(\d+) first=" + _NUM + r" curr=" + _NUM + r" min=" + _NUM + r" max=" + _NUM +
                      r" avg=" + _NUM + r" std=" + _NUM, text)
    last = runs[-1] if runs else None  # the timed runs come after the warm-up line
    memory = re.search(r"(Peak memory footprint|Memory footprint delta from the start of the tool) \(MB\): "
                       r"init=" + _NUM + r" overall=" + _NUM, text)
    out: dict[str, Any] = {
        "init_ms": init_us / 1e3, "first_inference_ms": first_us / 1e3,
        "latency_ms": {"mean": avg_us / 1e3, "std": float(last[6]) / 1e3 if last else None,
                       "min": float(last[3]) / 1e3 if last else None, "max": float(last[4]) / 1e3 if last else None,
                       "n": int(last[0]) if last else None, "p50": None, "p90": None, "p99": None},
        "tool": "benchmark_model",
    }
    if memory:
        out["tool_memory_mb"] = {"init": float(memory.group(2)), "overall": float(memory.group(3)),
                                 "kind": "peak" if memory.group(1).startswith("Peak") else "delta from tool start"}
    return out


def parse_ort_perf_test(text: str) -> dict[str, Any]:
    """Fields from onnxruntime_perf_test output."""
    mean = _find(r"Average inference time cost:\s*" + _NUM + r"\s*ms", text) or _find(r"Average time cost:\s*" + _NUM + r"\s*ms", text)
    if mean is None:
        raise EdgekitError("onnxruntime_perf_test printed no average time; it failed or was interrupted.",
                           hint=text.strip()[-500:])
    session_s = _find(r"Session creation time cost:\s*" + _NUM + r"\s*s", text)
    pct = {p: _find(rf"P{p} Latency is\s*" + _NUM + r"\s*sec", text) for p in (50, 90, 99)}
    peak = _find(r"Peak working set size:\s*" + _NUM + r"\s*bytes", text)
    count = _find(r"Total inference requests:\s*" + _NUM, text) or _find(r"Total iterations:\s*" + _NUM, text)
    return {
        "init_ms": session_s * 1e3 if session_s is not None else None, "first_inference_ms": None,
        "latency_ms": {"mean": mean, "std": None, "n": int(count) if count else None,
                       "min": _s_to_ms(_find(r"Min Latency is\s*" + _NUM, text)),
                       "max": _s_to_ms(_find(r"Max Latency is\s*" + _NUM, text)),
                       **{f"p{p}": _s_to_ms(v) for p, v in pct.items()}},
        "tool_memory_mb": {"overall": peak / 2**20, "kind": "peak working set"} if peak else None,
        "tool": "onnxruntime_perf_test",
    }


def parse_executor_runner(text: str) -> dict[str, Any]:
    """Fields from ExecuTorch's executor_runner: total time of N executions (mean only), load time if printed."""
    match = re.search(r"Model executed successfully (\d+) time\(s\) in " + _NUM + r" ms", text)
    if not match:
        raise EdgekitError("executor_runner printed no 'Model executed successfully' line; it failed or was interrupted.",
                           hint=text.strip()[-500:])
    count, total = int(match.group(1)), float(match.group(2))
    return {
        "init_ms": _find(r"Model loaded in " + _NUM + r" ms", text), "first_inference_ms": None,
        "latency_ms": {"mean": total / count, "std": None, "n": count, "min": None, "max": None,
                       "p50": None, "p90": None, "p99": None},
        "tool_memory_mb": None, "tool": "executor_runner",
    }


def _s_to_ms(value: float | None) -> float | None:
    return value * 1e3 if value is not None else None


def tool_command(suffix: str, tool: str, model: str, threads: int, runs: int, warmup: int) -> list[str]:
    """The native tool's command line for one artifact."""
    if suffix == ".tflite":
        return [tool, f"--graph={model}", f"--num_threads={threads}", f"--num_runs={runs}", f"--warmup_runs={warmup}"]
    if suffix == ".onnx":
        return [tool, "-m", "times", "-r", str(runs), "-x", str(threads), "-I", model, "/dev/null"]
    if suffix == ".pte":
        return [tool, f"--model_path={model}", f"--num_executions={runs}", f"--cpu_threads={threads}"]
    raise EdgekitError(f"No native benchmark tool is known for '{suffix}' files.")


PARSERS = {".tflite": parse_tflite_benchmark, ".onnx": parse_ort_perf_test, ".pte": parse_executor_runner}
