"""Benchmarks on Android over adb with the runtime's own native tool (benchmark_model, onnxruntime_perf_test)."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from edgekit.artifact import read_sidecar
from edgekit.bench.harness import Settings, gzip_size
from edgekit.bench.stats import middle
from edgekit.bench.native import PARSERS, tool_command
from edgekit.errors import UsageError
from edgekit.progress import SILENT, Progress
from edgekit.transport.adb import AdbTransport
from edgekit.transport.base import DeviceError

PEAK_SCRIPT = Path(__file__).with_name("peak_rss.sh")


def benchmark_adb(artifacts: list[Path], device: str, tool: str | None, settings: Settings = Settings(),
                  progress: Progress = SILENT, adb: str = "adb", timeout: float = 600.0
                  ) -> tuple[list[dict[str, Any]], str | None]:
    """Push the tool, the artifacts and a VmHWM poller; run each artifact `processes` times, interleaved."""
    if not tool or not Path(tool).is_file():
        raise UsageError("Benchmarking over adb runs the runtime's own tool on the device: pass --tool PATH.",
                         hint="e.g. --tool android_aarch64_benchmark_model (TFLite) or onnxruntime_perf_test built for Android.")
    suffixes = {p.suffix for p in artifacts}
    unknown = suffixes - set(PARSERS)
    if unknown:
        raise UsageError(f"No native tool parser for {', '.join(sorted(unknown))} files over adb.",
                         hint=f"Supported: {', '.join(PARSERS)}.")
    taken: dict[tuple[int, int], list[dict]] = {}
    error = None
    transport = AdbTransport.from_url(device, adb=adb, timeout=timeout)
    with transport:
        remote_tool = transport.push(Path(tool))
        script = transport.push(PEAK_SCRIPT)
        transport.run(["chmod", "755", remote_tool, script])
        remote = [transport.push(p) for p in artifacts]
        try:
            for threads in settings.threads:
                for rep in range(settings.processes):
                    order = list(range(len(artifacts)))[:: -1 if rep % 2 else 1]
                    for i in order:
                        argv = tool_command(artifacts[i].suffix, remote_tool, remote[i], threads,
                                            settings.min_runs, settings.warmup)
                        with progress.step(f"{artifacts[i].name} threads={threads} run {rep + 1}/{settings.processes}"):
                            result = transport.run(["sh", script, *argv])
                        if result.returncode != 0:
                            raise DeviceError(f"{Path(tool).name} failed on {transport.name} for {artifacts[i].name} "
                                              f"(exit {result.returncode}): {result.stdout.strip()[-400:]}")
                        parsed = PARSERS[artifacts[i].suffix](result.stdout)
                        match = re.search(r"EDGEKIT_VMHWM_KB=(\d+)", result.stdout)
                        parsed["peak_rss_kb"] = int(match.group(1)) if match else None
                        taken.setdefault((i, threads), []).append(parsed)
        except DeviceError as e:
            error = str(e)
            progress.warn(f"stopped early: {e.message}")
    return [_summarize(artifacts[i], transport.name, t, reps) for (i, t), reps in taken.items()], error


def _summarize(artifact: Path, device: str, threads: int, reps: list[dict]) -> dict[str, Any]:
    keys = ("p50", "p90", "p99", "mean", "std", "min", "max")
    latency = {k: middle([r["latency_ms"].get(k) for r in reps]) for k in keys}
    peak = middle([r["peak_rss_kb"] for r in reps])
    return {
        "artifact": str(artifact), "target": (read_sidecar(artifact) or {}).get("target"), "device": device,
        "threads": threads, "batch": 1, "latency_ms": latency,
        "init_ms": middle([r["init_ms"] for r in reps]), "first_inference_ms": middle([r["first_inference_ms"] for r in reps]),
        "peak_rss_mb": peak / 1024 if peak else None, "memory_method": "VmHWM from /proc/<pid>/status on the device",
        "tool_memory_mb": reps[0].get("tool_memory_mb"),
        "throughput_per_s": 1000.0 / latency["mean"] if latency["mean"] else None,
        "size_bytes": artifact.stat().st_size, "size_gzip_bytes": gzip_size(artifact),
        "processes": reps, "samples_ms": [], "noisy": False, "drift": 0.0, "drift_flag": False,
        "environment": {"tool": reps[0]["tool"], "device": device},
        "note": "aggregates from the runtime's own tool: no raw samples",
    }
