"""benchmark(): fresh-process repetitions of the worker on a device, interleaved fairly across artifacts."""
from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.artifact import read_sidecar, sidecar_tensors
from edgekit.bench import stats
from edgekit.errors import UsageError
from edgekit.progress import SILENT, Progress
from edgekit.transport import open_transport
from edgekit.transport.base import DeviceError, Transport

WORKER = Path(__file__).with_name("worker.py")
RUNTIME_MODULES = {".onnx": "onnxruntime", ".tflite": "ai_edge_litert", ".ptl": "torch", ".pte": "executorch"}


@dataclass(frozen=True)
class Settings:
    threads: tuple[int, ...] = (1,)
    batches: tuple[int, ...] = (1,)
    warmup: int = 10
    min_runs: int = 50
    min_time: float = 1.0
    processes: int = 3
    seed: int = 0


def gzip_size(path: Path) -> int:
    return len(gzip.compress(path.read_bytes(), compresslevel=6))


def check_device(transport: Transport, suffixes: set[str]) -> dict[str, Any]:
    """Fail early, naming what the device lacks: Python, numpy, the runtime for each artifact type."""
    modules = ["numpy"] + sorted({RUNTIME_MODULES[s] for s in suffixes})
    probe = ("import importlib.util,sys;m=[n for n in sys.argv[1:] if importlib.util.find_spec(n) is None];"
             "print(','.join(m))")
    result = transport.run([transport.python(), "-c", probe, *modules], timeout=120)
    if result.returncode != 0:
        raise DeviceError(f"Python '{transport.python()}' does not run on {transport.name}: "
                          f"{(result.stderr or result.stdout).strip()[:300]}",
                          hint="Point to a Python 3 interpreter on the device with --python.")
    missing = [m for m in result.stdout.strip().split(",") if m]
    if missing:
        raise DeviceError(f"{transport.name} lacks the Python package(s) {', '.join(missing)} under {transport.python()}.",
                          hint="Install them on the device (e.g. pip install onnxruntime numpy), or pass --python.")
    return json.loads(transport.run([transport.python(), transport.push(WORKER), "--env"], timeout=120).stdout)


def _worker_inputs(artifact: Path) -> list[str]:
    """`--inputs` for files that record no input names (.ptl, .pte): the tensors from the sidecar."""
    if artifact.suffix not in (".ptl", ".pte"):
        return []
    specs = [[s.name, s.dtype, [d if isinstance(d, int) else -1 for d in s.shape]] for s in sidecar_tensors(artifact)[0]]
    return ["--inputs", json.dumps(specs)]


def _run_worker(transport: Transport, worker: str, model: str, threads: int, batch: int, s: Settings, rep: int,
                extra: list[str]) -> dict:
    argv = [transport.python(), worker, model, "--threads", str(threads), "--batch", str(batch),
            "--warmup", str(s.warmup), "--min-runs", str(s.min_runs), "--min-time", str(s.min_time),
            "--seed", str(s.seed + rep), *extra]
    result = transport.run(argv)
    try:
        out = json.loads(result.stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        raise DeviceError(f"The benchmark worker failed on {transport.name} for {Path(model).name}: "
                          f"{(result.stderr or result.stdout).strip()[-500:]}") from None
    if "error" in out:
        raise DeviceError(f"{Path(model).name} on {transport.name}: {out['error']}")
    return out


def summarize(artifact: Path, device: str, threads: int, batch: int, reps: list[dict], env: dict) -> dict[str, Any]:
    """One run of the JSON contract from the worker's repetitions."""
    samples = [x for r in reps for x in r["samples_ms"]]
    medians = [stats.latency_summary(r["samples_ms"])["p50"] for r in reps]
    latency = stats.latency_summary(samples)
    latency["median_ci95"] = stats.median_ci(medians)
    sidecar = read_sidecar(artifact) or {}
    kb = lambda key: max((r[key] for r in reps if r.get(key) is not None), default=None)  # noqa: E731
    drift = stats.drift([r["samples_ms"] for r in reps])
    # programs that fix their batch (.pte) run it whatever was asked: count what ran
    fed = [shape[0] for shape in reps[0].get("inputs", {}).values() if shape]
    batch_fed = fed[0] if fed else batch
    return {
        "artifact": str(artifact), "target": sidecar.get("target"), "device": device, "threads": threads, "batch": batch,
        "latency_ms": latency,
        "init_ms": stats.middle([r["init_ms"] for r in reps]),
        "first_inference_ms": stats.middle([r["first_inference_ms"] for r in reps]),
        "peak_rss_mb": kb("peak_rss_kb") / 1024 if kb("peak_rss_kb") else None,
        "peak_rss_after_load_mb": kb("peak_rss_after_load_kb") / 1024 if kb("peak_rss_after_load_kb") else None,
        "memory_method": reps[0]["memory_method"],
        "batch_fed": batch_fed,
        "throughput_per_s": batch_fed * 1000.0 / latency["mean"],
        "size_bytes": artifact.stat().st_size, "size_gzip_bytes": gzip_size(artifact),
        "processes": [{"p50_ms": m, "init_ms": r["init_ms"], "first_inference_ms": r["first_inference_ms"],
                       "peak_rss_kb": r["peak_rss_kb"], "runs": len(r["samples_ms"])} for m, r in zip(medians, reps)],
        "noisy": stats.noisy(medians), "drift": round(drift, 4), "drift_flag": abs(drift) > stats.DRIFT,
        "inputs": reps[0]["inputs"], "samples_ms": samples,
        "environment": {**env, "runtime_versions": reps[0]["runtime_versions"]},
    }


def benchmark(artifacts: list[str | Path], device: str = "local", settings: Settings = Settings(),
              progress: Progress = SILENT, tool: str | None = None,
              **transport_options) -> tuple[list[dict[str, Any]], str | None]:
    """Benchmark every artifact for each (threads, batch); returns (runs, error that stopped it early or None).

    Over adb the runtime's own native `tool` runs on the device instead of the Python worker.
    """
    paths = [Path(a) for a in artifacts]
    for p in paths:
        if not p.is_file():
            raise UsageError(f"Artifact {p} does not exist.")
    if device.startswith("adb://"):
        from edgekit.bench.adb_runs import benchmark_adb

        return benchmark_adb(paths, device, tool, settings, progress, **transport_options)
    for p in paths:
        if p.suffix not in RUNTIME_MODULES:
            raise UsageError(f"No benchmark runtime for '{p.suffix}' files.", hint=f"Supported: {', '.join(RUNTIME_MODULES)}.")
    taken: dict[tuple[int, int, int], list[dict]] = {}
    error = None
    with open_transport(device, **transport_options) as transport:
        env = check_device(transport, {p.suffix for p in paths})
        worker = transport.push(WORKER)
        remote = [transport.push(p) for p in paths]
        extras = [_worker_inputs(p) for p in paths]
        try:
            for threads in settings.threads:
                for batch in settings.batches:
                    for rep in range(settings.processes):
                        order = list(range(len(paths)))
                        if rep % 2:
                            order.reverse()  # alternate the order so neither artifact always runs first
                        for i in order:
                            with progress.step(f"{paths[i].name} threads={threads} batch={batch} process {rep + 1}/{settings.processes}"):
                                out = _run_worker(transport, worker, remote[i], threads, batch, settings, rep, extras[i])
                            taken.setdefault((i, threads, batch), []).append(out)
        except DeviceError as e:  # keep every repetition already taken
            error = str(e)
            progress.warn(f"stopped early: {e.message}")
    runs = [summarize(paths[i], transport.name, t, b, reps, env) for (i, t, b), reps in taken.items()]
    return runs, error


def compare_baseline(runs: list[dict], baseline: list[dict], threshold: float = 0.05) -> list[str]:
    """Regressions against an earlier JSON: matched by artifact file name, threads and batch."""
    key = lambda r: (Path(r["artifact"]).name, r["threads"], r["batch"])  # noqa: E731
    old_runs = {key(r): r for r in baseline}
    failures = []
    for run in runs:
        old = old_runs.get(key(run))
        if old is None:
            continue
        name = f"{key(run)[0]} (threads={run['threads']}, batch={run['batch']})"
        lat = stats.regression(old["samples_ms"], run["samples_ms"], threshold)
        run["baseline"] = {"latency_p50": lat}
        if lat["regressed"]:
            failures.append(f"{name}: latency p50 {lat['old']:.3f} -> {lat['new']:.3f} ms "
                            f"(+{lat['change'] * 100:.1f}%, p={lat['p_value']:.2g})")
        for figure in ("init_ms", "peak_rss_mb"):
            old_v = [p[figure if figure == "init_ms" else "peak_rss_kb"] for p in old.get("processes", [])]
            new_v = [p[figure if figure == "init_ms" else "peak_rss_kb"] for p in run.get("processes", [])]
            if old_v and new_v and None not in old_v + new_v:
                result = stats.regression(old_v, new_v, threshold)
                run["baseline"][figure] = result
                if result["regressed"]:
                    failures.append(f"{name}: {figure} +{result['change'] * 100:.1f}% (p={result['p_value']:.2g})")
    return failures
