"""OpenVINO's benchmark_app as the native tool on a device: its command line, and its statistics report
parsed into edgekit's run fields (aggregates only: median, average, min, max; no percentiles beyond p50)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from edgekit.errors import EdgekitError

_NUM = r"([0-9]+(?:\.[0-9]+)?)"
FREE_DIM = 64  # a free non-batch dim (sequence length) is run at the benchmark's default --seq-len


def command(tool: str, model: str, threads: int, runs: int, warmup: int) -> list[str]:
    """A synchronous latency run: one request, one stream, `threads` threads, `runs` iterations (benchmark_app
    warms up itself). benchmark_app takes -nstreams/-nthreads only with `-hint none`."""
    return [tool, "-m", model, "-api", "sync", "-hint", "none", "-nstreams", "1", "-nthreads", str(threads),
            "-niter", str(runs)]  # fmt: skip


def extra_args(artifact: Path) -> list[str]:
    """The device and float precision the IR was exported for, and fixed shapes for its free dims (batch 1)."""
    from edgekit.backends.openvino.stack import import_stack
    from edgekit.backends.openvino.worker_loader import setting

    ov = import_stack("openvino", "Reading an OpenVINO IR")
    model = ov.Core().read_model(str(artifact))
    args = ["-d", setting(model, "device", "CPU")]
    precision = setting(model, "inference_precision", None)
    if precision:
        args += ["-infer_precision", precision]
    shapes = []
    for port in model.inputs:
        dims = [
            (1 if i == 0 else FREE_DIM) if d.is_dynamic else d.get_length()
            for i, d in enumerate(port.get_partial_shape())
        ]
        shapes.append(f"{port.get_any_name()}[{','.join(map(str, dims))}]")
    if any(port.get_partial_shape().is_dynamic for port in model.inputs):
        args += ["-shape", ",".join(shapes)]
    return args


_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3}  # newer releases print sub-millisecond times in microseconds


def _find(pattern: str, text: str) -> float | None:
    match = re.search(pattern, text)
    return float(match.group(1)) if match else None


def _time(label: str, text: str) -> float | None:
    """`Label: 12.13 us` (or ms, s) in milliseconds."""
    match = re.search(rf"{label}:?\s*{_NUM}\s*(us|ms|s)\b", text)
    return float(match.group(1)) * _MS[match.group(2)] if match else None


def parse(text: str) -> dict[str, Any]:
    """The `Dumping statistics report` step of a benchmark_app run, as edgekit's native-tool run fields."""
    start = text.find("Dumping statistics report")
    report = text[start:] if start >= 0 else ""
    median = _time("Median", report)
    if median is None:
        raise EdgekitError(
            "benchmark_app printed no statistics report; it failed or was interrupted.", hint=text.strip()[-500:]
        )
    read, compiled = _time("Read model took", text), _time("Compile model took", text)
    count = _find(r"Count:\s*" + _NUM + r"\s*iterations", report)
    devices = re.search(r"Execution Devices:\s*\[([^\]]*)\]", report)
    build = re.search(r"Build \.+\s*(\S+)", text)
    return {
        "init_ms": (read or 0.0) + compiled if compiled is not None else None,
        "first_inference_ms": _time("First inference took", text),
        "latency_ms": {
            "p50": median,
            "mean": _time("Average", report),
            "min": _time("Min", report),
            "max": _time("Max", report),
            "p90": None,
            "p99": None,
            "std": None,
            "n": int(count) if count is not None else None,
        },
        "throughput_qps": _find(r"Throughput:\s*" + _NUM + r"\s*FPS", report),
        "tool": "benchmark_app",
        **({"openvino_version": build.group(1)} if build else {}),
        **({"execution_devices": [d.strip(" '\"") for d in devices.group(1).split(",")]} if devices else {}),
    }
