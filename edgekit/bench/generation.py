"""benchmark_generation(): time to first token, prefill and decode speed of generative files (causal LMs), each
repetition a fresh process on the device, interleaved across files, summarised as JSON runs
(edgekit.bench.generation_schema). edgekit's generation worker (generate_worker.py beside this module) generates
through the runtime's loader (Backend.generation_loader), both pushed to the device."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.backends.base import Backend
from edgekit.backends.registry import backend_for_file, backends
from edgekit.bench import stats
from edgekit.bench.generation_schema import SCHEMA_VERSION
from edgekit.bench.strategies import check_device, push_artifact
from edgekit.checksum import size_of
from edgekit.dispatch import require_artifact
from edgekit.errors import UsageError
from edgekit.progress import SILENT, Progress
from edgekit.sidecar import read_sidecar
from edgekit.transport import open_transport
from edgekit.transport.base import DeviceError, Transport

USAGE_EXIT = 3  # the worker's exit status for a request the model cannot take (a prompt past its context)
WORKER = Path(__file__).with_name("generate_worker.py")


@dataclass(frozen=True)
class GenerationSettings:
    threads: tuple[int, ...] = (1,)
    prompt_tokens: tuple[int, ...] = (64,)
    new_tokens: int = 128
    processes: int = 3  # fresh processes per file and setting
    runs: int = 3  # timed generations per process
    warmup: int = 1  # untimed generations first, per process


def benchmark_generation(
    artifacts: list[str | Path],
    device: str = "local",
    settings: GenerationSettings = GenerationSettings(),
    progress: Progress = SILENT,
    **transport_options: Any,
) -> tuple[list[dict[str, Any]], str | None]:
    """Generation runs for every file, thread count and prompt length; returns (runs, error that stopped it
    early or None). A file whose runtime does not generate is refused before any device is touched."""
    paths = [require_artifact(Path(a)) for a in artifacts]
    generating = [_generating_backend(p) for p in paths]
    taken: dict[tuple[int, int, int], list[dict[str, Any]]] = {}
    error = None
    with open_transport(device, **transport_options) as transport:
        environment = check_device(transport, [b for b, _ in generating])
        worker = transport.push(WORKER, WORKER.name)
        # every runtime's loader is called generation_loader.py: each is pushed under its runtime's name
        loaders = {b.runtime: transport.push(loader, f"{b.runtime}_generation_loader.py") for b, loader in generating}
        remote = [push_artifact(transport, p, i) for i, p in enumerate(paths)]
        try:
            for threads in settings.threads:
                for prompt in settings.prompt_tokens:
                    for rep in range(settings.processes):
                        order = range(len(paths)) if rep % 2 == 0 else reversed(range(len(paths)))
                        for i in order:
                            with progress.step(
                                f"{paths[i].name} threads={threads} prompt={prompt} process {rep + 1}/"
                                f"{settings.processes}"
                            ):
                                loader = loaders[generating[i][0].runtime]
                                record = _run(transport, [worker, loader, remote[i]], threads, prompt, settings)
                            taken.setdefault((i, threads, prompt), []).append(record)
        except DeviceError as e:  # keep every repetition already taken
            error = str(e)
            progress.warn(f"stopped early: {e.message}")
    runs = [
        summarize(paths[i], transport.name, threads, prompt, settings.new_tokens, reps, environment)
        for (i, threads, prompt), reps in taken.items()
    ]
    return runs, error


def _generating_backend(path: Path) -> tuple[Backend, Path]:
    """The file's backend and its generation loader; refused (exit 2) when the runtime has none."""
    backend = backend_for_file(path)
    if backend.generation_loader is None:
        generative = [b.runtime for b in backends().values() if b.generation_loader]
        raise UsageError(
            f"{path} is a {backend.runtime} file, which edgekit does not benchmark generating text.",
            hint=f"--generate times causal-LM files of: {', '.join(generative)} (e.g. edgekit export LM_FOLDER "
            "-t ort-genai-int4). Drop --generate to time one forward pass of this file.",
        )
    return backend, backend.generation_loader


def _run(
    transport: Transport, pushed: list[str], threads: int, prompt: int, settings: GenerationSettings
) -> dict[str, Any]:
    """One process of the worker on `pushed` (worker, loader, artifact), its JSON record."""
    argv = [transport.python(), *pushed, str(prompt), str(settings.new_tokens), str(threads)]
    result = transport.run([*argv, str(settings.runs), str(settings.warmup)])
    last = (result.stderr.strip().splitlines() or ["no output"])[-1]
    if result.returncode == USAGE_EXIT:
        raise UsageError(last)
    if result.returncode != 0:
        raise DeviceError(f"The generation worker failed on {transport.name}: {last}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def _rate(per_process: list[float]) -> dict[str, Any]:
    return {
        "median": float(np.median(per_process)),
        "median_ci95": stats.median_ci(per_process),
        "processes": per_process,
    }


def summarize(
    artifact: Path,
    device: str,
    threads: int,
    prompt: int,
    new_tokens: int,
    reps: list[dict[str, Any]],
    environment: dict[str, Any],
) -> dict[str, Any]:
    """One run of the JSON contract from its processes' records: each figure is the median over a process's
    timed generations, then the median over processes with its bootstrap interval."""
    ttft = [float(np.median(r["ttft_ms"])) for r in reps]
    decode = [float(np.median([len(t) * 1e3 / sum(t) for t in r["token_ms"] if t])) for r in reps]
    tokens = [x for r in reps for t in r["token_ms"] for x in t]
    rss = max((r["peak_rss_bytes"] for r in reps), default=None)
    sidecar = read_sidecar(artifact)
    return {
        "schema_version": SCHEMA_VERSION,
        "artifact": str(artifact),
        "target": sidecar.target if sidecar else None,
        "device": device,
        "threads": threads,
        "prompt_tokens": prompt,
        "new_tokens": new_tokens,
        "generations": sum(len(r["ttft_ms"]) for r in reps),
        "load_ms": _rate([r["load_ms"] for r in reps]),
        "time_to_first_token_ms": _rate(ttft),
        "prefill_tokens_per_s": _rate([prompt * 1e3 / t for t in ttft]),
        "decode_tokens_per_s": _rate(decode),
        "token_latency_ms": stats.latency_summary(tokens) if tokens else {},
        "peak_rss_mb": rss / 2**20 if rss else None,
        "size_bytes": size_of(artifact),
        "environment": {**environment, "runtime_versions": reps[0].get("versions", {})},
    }
