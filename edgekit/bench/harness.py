"""benchmark(): fresh-process repetitions on a device, interleaved across artifacts, summarised as JSON runs."""

from __future__ import annotations

import functools
import gzip
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.backends.registry import backend_for_file
from edgekit.bench import stats
from edgekit.bench.schema import SCHEMA_VERSION as BENCHMARK_SCHEMA
from edgekit.bench.strategies import NativeTool, PythonWorker, check_tool_argument
from edgekit.checksum import files_of, size_of
from edgekit.dispatch import artifact_files, require_artifact
from edgekit.progress import SILENT, Progress
from edgekit.sidecar import read_sidecar
from edgekit.transport import open_transport
from edgekit.transport.base import DeviceError


@dataclass(frozen=True)
class Settings:
    threads: tuple[int, ...] = (1,)
    batches: tuple[int, ...] = (1,)
    warmup: int = 10
    min_runs: int = 50
    min_time: float = 1.0
    processes: int = 3
    seed: int = 0
    # adaptive run length: after `processes` rounds, keep adding rounds until every artifact's speed ratio
    # to the first has a 95 % interval narrower than +-target_ci, or max_time seconds have passed
    max_time: float | None = None
    target_ci: float = 0.01
    seq_len: int = 64  # the size of every free non-batch input dim (a text model's unpadded length)


def gzip_size(path: Path) -> int:
    """What the artifact's files (an OpenVINO .xml with its .bin) weigh gzipped, as an app download would."""
    parts = [f for p in artifact_files(path) for f in files_of(p)]
    return len(gzip.compress(b"".join(p.read_bytes() for p in parts), compresslevel=6))


def summarize(artifact: Path, device: str, threads: int, batch: int, reps: list[dict], env: dict) -> dict[str, Any]:
    """One run of the JSON contract from its repetitions: statistics over raw samples where the strategy
    kept them (the Python worker), else the middle of each repetition's aggregates (native tools)."""
    samples = [x for r in reps for x in r.get("samples_ms", [])]
    sidecar = read_sidecar(artifact)
    peak = lambda key: max((r[key] for r in reps if r.get(key) is not None), default=None)
    rss, rss_after_load = peak("peak_rss_kb"), peak("peak_rss_after_load_kb")
    latency: dict[str, Any]
    if samples:
        medians = _process_medians(reps)
        latency = {**stats.latency_summary(samples), "median_ci95": stats.median_ci(medians)}
        drift = stats.drift([r["samples_ms"] for r in reps])
        noisy = stats.noisy(medians)
    else:
        latency = {
            k: stats.middle([r["latency_ms"].get(k) for r in reps])
            for k in ("p50", "p90", "p99", "mean", "std", "min", "max")
        }
        medians, drift, noisy = [], 0.0, False
    # programs that fix their batch (.pte) run it whatever was asked: count what ran
    fed = [shape[0] for shape in reps[0].get("inputs", {}).values() if shape]
    batch_fed = fed[0] if fed else batch
    run = {
        "schema_version": BENCHMARK_SCHEMA,
        "artifact": str(artifact),
        "target": sidecar.target if sidecar else None,
        "device": device,
        "threads": threads,
        "batch": batch,
        "latency_ms": latency,
        "init_ms": stats.middle([r["init_ms"] for r in reps]),
        "first_inference_ms": stats.middle([r["first_inference_ms"] for r in reps]),
        "peak_rss_mb": rss / 1024 if rss else None,
        "peak_rss_after_load_mb": rss_after_load / 1024 if rss_after_load else None,
        "memory_method": reps[0]["memory_method"],
        "batch_fed": batch_fed,
        "throughput_per_s": batch_fed * 1000.0 / latency["mean"] if latency["mean"] else None,
        "size_bytes": sum(size_of(p) for p in artifact_files(artifact)),
        "size_gzip_bytes": gzip_size(artifact),
        "noisy": noisy,
        "drift": round(drift, 4),
        "drift_flag": abs(drift) > stats.DRIFT,
        "inputs": reps[0].get("inputs", {}),
        "samples_ms": samples,
        "environment": {**env, "runtime_versions": reps[0].get("runtime_versions", {})},
    }
    run["work"] = work_and_efficiency(artifact, run)
    if samples:
        run["processes"] = [
            {
                "p50_ms": m,
                "init_ms": r["init_ms"],
                "first_inference_ms": r["first_inference_ms"],
                "peak_rss_kb": r["peak_rss_kb"],
                "runs": len(r["samples_ms"]),
            }
            for m, r in zip(medians, reps)
        ]
    else:
        run["processes"] = reps
        run["tool_memory_mb"] = reps[0].get("tool_memory_mb")
        run["note"] = "aggregates from the runtime's own tool: no raw samples"
    return run


def work_and_efficiency(artifact: Path, run: dict[str, Any]) -> dict[str, Any] | None:
    """The file's arithmetic work at the benchmarked shapes, the GFLOP/s achieved at p50 and, on this
    machine, the efficiency against its measured GEMM peak (edgekit.backends.work, edgekit.bench.peak).
    For the runtimes whose backend counts work (ONNX, OpenVINO IR, .tflite)."""
    if backend_for_file(artifact).count_work is None or not run["inputs"] or not run["latency_ms"].get("p50"):
        return None
    from edgekit.bench.peak import efficiency, peak_gflops

    stat = artifact.stat()
    try:  # one count per file and shapes: the runs at other thread counts reuse it
        work = dict(_count(str(artifact), stat.st_mtime_ns, stat.st_size, json.dumps(run["inputs"], sort_keys=True)))
    except Exception as e:  # shape inference can fail on exotic graphs: the run stands without it
        return {"error": f"work not counted: {e}"}
    seconds = run["latency_ms"]["p50"] / 1e3
    work["achieved_gflops"] = round(work["flops"] / seconds / 1e9, 2)
    if run["device"] == "local":
        peak = peak_gflops(run["threads"])
        work["peak_gflops"] = {k: peak[k] for k in ("fp32", "int8")}
        eta = efficiency(work, seconds, peak)
        work["efficiency"] = round(eta, 3) if eta is not None else None
    return work


@functools.lru_cache(maxsize=32)
def _count(path: str, mtime_ns: int, size: int, inputs: str) -> dict[str, Any]:
    """The backend's work count of the file, remembered by file version (mtime and size) and input shapes."""
    counter = backend_for_file(Path(path)).count_work
    assert counter is not None  # work_and_efficiency asks only backends that count
    return counter(Path(path), json.loads(inputs))


def benchmark(
    artifacts: list[str | Path],
    device: str = "local",
    settings: Settings = Settings(),
    progress: Progress = SILENT,
    tool: str | None = None,
    **transport_options,
) -> tuple[list[dict[str, Any]], str | None]:
    """Benchmark every artifact for each (threads, batch); returns (runs, error that stopped it early or None).

    Each repetition is a fresh process on the device, interleaved across artifacts. With `tool` (required
    over adb), the runtime's own native benchmark program runs instead of edgekit's Python worker.
    """
    paths = [Path(a) for a in artifacts]
    for p in paths:
        require_artifact(p)  # also: an unknown file type is a usage error before any device is touched
    check_tool_argument(device, tool)
    taken: dict[tuple[int, int, int], list[dict]] = {}
    error = None
    with open_transport(device, **transport_options) as transport:
        native = tool is not None or _installed_tool(device, paths)
        strategy = NativeTool(transport, paths, settings, tool) if native else PythonWorker(transport, paths, settings)
        try:
            for threads in settings.threads:
                for batch in strategy.batches():
                    began, rep = time.monotonic(), 0
                    while rep < settings.processes or _keep_sampling(
                        taken, len(paths), threads, batch, settings, began
                    ):
                        order = list(range(len(paths)))
                        if rep % 2:
                            order.reverse()  # alternate the order so neither artifact always runs first
                        for i in order:
                            with progress.step(
                                f"{paths[i].name} threads={threads} batch={batch} "
                                f"process {rep + 1}/{settings.processes if rep < settings.processes else '+'}"
                            ):
                                record = strategy.run(i, threads, batch, rep)
                            taken.setdefault((i, threads, batch), []).append(record)
                        rep += 1
        except DeviceError as e:  # keep every repetition already taken
            error = str(e)
            progress.warn(f"stopped early: {e.message}")
    runs = [summarize(paths[i], transport.name, t, b, reps, strategy.environment) for (i, t, b), reps in taken.items()]
    for run, (i, t, b) in zip(runs, taken):
        if i > 0 and (0, t, b) in taken:
            run["ratio_to_first"] = stats.ratio_ci(_process_medians(taken[0, t, b]), _process_medians(taken[i, t, b]))
    return runs, error


def _process_medians(reps: list[dict]) -> list[float]:
    """Each repetition's central latency: the median of its samples, or the native tool's median or mean."""
    out = []
    for r in reps:
        if r.get("samples_ms"):
            out.append(float(np.median(r["samples_ms"])))
        else:
            latency = r.get("latency_ms") or {}
            central = latency.get("p50") or latency.get("mean")
            out.append(float(central) if central is not None else float("nan"))  # numpy's reading of a gap
    return out


def _keep_sampling(taken: dict, n: int, threads: int, batch: int, settings: Settings, began: float) -> bool:
    """Adaptive mode: another round while some artifact's ratio to the first is not yet known to +-target_ci."""
    if settings.max_time is None or n < 2 or time.monotonic() - began >= settings.max_time:
        return False
    first = _process_medians(taken.get((0, threads, batch), []))
    for i in range(1, n):
        ratio = stats.ratio_ci(first, _process_medians(taken.get((i, threads, batch), [])))
        if ratio is None or ratio["half_width"] > settings.target_ci:
            return True
    return False


def _installed_tool(device: str, paths: list[Path]) -> bool:
    """Whether every file runs with a native tool the remote device has installed itself (trtexec for
    TensorRT engines): then that tool, not edgekit's Python worker, times them there."""
    tools = {backend_for_file(p).native_tool for p in paths}
    return device.startswith("ssh://") and len(tools) == 1 and all(t is not None and t.locate for t in tools)


def compare_baseline(runs: list[dict], baseline: list[dict], threshold: float = 0.05) -> list[str]:
    """Regressions against an earlier JSON: matched by artifact file name, threads, batch and device.

    A baseline run this benchmark did not repeat is a failure too: a gate that silently checks nothing
    (other --threads, --batch or --device than the baseline's) must not pass.
    """
    key = lambda r: (Path(r["artifact"]).name, r["threads"], r["batch"], r.get("device", "local"))
    old_runs = {key(r): r for r in baseline}
    new_keys = {key(r) for r in runs}
    failures = [
        f"baseline run {k[0]} (threads={k[1]}, batch={k[2]}, device={k[3]}) has no match in this run: "
        "benchmark the same files with the same --threads, --batch and --device"
        for k in old_runs
        if k not in new_keys
    ]
    for run in runs:
        old = old_runs.get(key(run))
        if old is None:
            continue
        name = f"{key(run)[0]} (threads={run['threads']}, batch={run['batch']}, device={key(run)[3]})"
        if old["samples_ms"] and run["samples_ms"]:
            lat = stats.regression(old["samples_ms"], run["samples_ms"], threshold)
        else:  # a native tool (adb): no raw samples, one aggregate per process, tested like the per-process figures
            before, after = _process_medians(old.get("processes", [])), _process_medians(run.get("processes", []))
            lat = stats.regression(before, after, threshold, alpha=stats.PER_PROCESS_ALPHA)
            lat["from"] = "per-process aggregates of the native tool"
        run["baseline"] = {"latency_p50": lat}
        if lat["regressed"]:
            failures.append(
                f"{name}: latency p50 {lat['old']:.3f} -> {lat['new']:.3f} ms "
                f"(+{lat['change'] * 100:.1f}%, p={lat['p_value']:.2g})"
            )
        for figure in ("init_ms", "peak_rss_mb"):
            old_v = [p[figure if figure == "init_ms" else "peak_rss_kb"] for p in old.get("processes", [])]
            new_v = [p[figure if figure == "init_ms" else "peak_rss_kb"] for p in run.get("processes", [])]
            if old_v and new_v and None not in old_v + new_v:
                # one value per process: with the default 3 processes the smallest one-sided p is 0.05
                # (every new process worse than every old one), so these figures are tested at 0.05
                result = stats.regression(old_v, new_v, threshold, alpha=stats.PER_PROCESS_ALPHA)
                run["baseline"][figure] = result
                if result["regressed"]:
                    failures.append(f"{name}: {figure} +{result['change'] * 100:.1f}% (p={result['p_value']:.2g})")
    return failures
