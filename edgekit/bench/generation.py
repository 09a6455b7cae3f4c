"""benchmark_generation(): time to first token, prefill and decode speed of generative files (causal LMs), each
repetition a fresh process on the device, interleaved across files, summarised as JSON runs
(edgekit.bench.generation_schema). edgekit's generation worker (generate_worker.py beside this module) generates
through the runtime's loader (Backend.generation_loader), both pushed to the device; or, with a tool, the runtime's
own generation benchmark (Backend.generation_tool: llama.cpp's llama-bench) runs there instead."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.backends.base import Backend, GenerationTool
from edgekit.backends.registry import backend_for_file, backends
from edgekit.bench import stats
from edgekit.bench.generation_schema import SCHEMA_VERSION
from edgekit.bench.strategies import (
    PEAK_SCRIPT,
    check_device,
    check_tool_argument,
    place_tool,
    push_artifact,
    run_polled,
)
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
    tool: str | None = None,
    **transport_options: Any,
) -> tuple[list[dict[str, Any]], str | None]:
    """Generation runs for every file, thread count and prompt length; returns (runs, error that stopped it
    early or None). A file whose runtime does not generate is refused before any device is touched. With `tool`
    (required over adb), the runtime's own generation program (llama-bench, llama_main) runs instead of edgekit's
    worker."""
    paths = [require_artifact(Path(a)) for a in artifacts]
    check_tool_argument(device, tool)
    taken: dict[tuple[int, int, int], list[dict[str, Any]]] = {}
    error = None
    with open_transport(device, **transport_options) as transport:
        strategy = ToolGeneration(transport, paths, settings, tool) if tool else WorkerGeneration(transport, paths)
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
                                record = strategy.run(i, threads, prompt, settings)
                            taken.setdefault((i, threads, prompt), []).append(record)
        except DeviceError as e:  # keep every repetition already taken
            error = str(e)
            progress.warn(f"stopped early: {e.message}")
    runs = [
        summarize(paths[i], transport.name, threads, prompt, settings.new_tokens, reps, strategy.environment)
        for (i, threads, prompt), reps in taken.items()
    ]
    return runs, error


class WorkerGeneration:
    """edgekit's generation worker in a fresh Python process per repetition, with the runtime's generation
    loader; it records every new token's time."""

    def __init__(self, transport: Transport, paths: list[Path]) -> None:
        self.transport = transport
        generating = [_generating_backend(p) for p in paths]
        self.environment = check_device(transport, [b for b, _ in generating])
        self.worker = transport.push(WORKER, WORKER.name)
        # every runtime's loader is called generation_loader.py: each is pushed under its runtime's name
        loaders = {b.runtime: transport.push(loader, f"{b.runtime}_generation_loader.py") for b, loader in generating}
        self.loaders = [loaders[b.runtime] for b, _ in generating]
        self.remote = [push_artifact(transport, p, i) for i, p in enumerate(paths)]

    def run(self, i: int, threads: int, prompt: int, settings: GenerationSettings) -> dict[str, Any]:
        """One process of the worker on file i: its JSON record."""
        t = self.transport
        argv = [t.python(), self.worker, self.loaders[i], self.remote[i], str(prompt), str(settings.new_tokens)]
        result = t.run([*argv, str(threads), str(settings.runs), str(settings.warmup)])
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        if result.returncode == USAGE_EXIT:
            raise UsageError(last)
        if result.returncode != 0:
            raise DeviceError(f"The generation worker failed on {t.name}: {last}")
        record = json.loads(result.stdout.strip().splitlines()[-1])
        record["decode_tokens_per_s"] = [len(t) * 1e3 / sum(t) for t in record["token_ms"] if t]
        return record


class ToolGeneration:
    """The runtime's own generation benchmark (Backend.generation_tool: llama-bench, llama_main) pushed to the
    device and run under the VmHWM poller; one figure per repetition, no per-token times."""

    def __init__(self, transport: Transport, paths: list[Path], settings: GenerationSettings, tool: str) -> None:
        self.transport, self.paths = transport, paths
        self.tools = [_generation_tool(p) for p in paths]
        _check_context(paths, settings)
        self.script = transport.push(PEAK_SCRIPT)  # run as `sh SCRIPT PROGRAM ARGS...`
        self.program = place_tool(transport, tool)
        self.remote = [push_artifact(transport, p, i) for i, p in enumerate(paths)]
        self.environment: dict[str, Any] = {"device": transport.name, "tool": Path(self.program).name}

    def run(self, i: int, threads: int, prompt: int, settings: GenerationSettings) -> dict[str, Any]:
        """One repetition: the tool's commands for file i, each a fresh process; their parsed figures."""
        outputs, peaks = [], []
        tool, new = self.tools[i], settings.new_tokens
        for argv in tool.commands(self.program, self.remote[i], self.paths[i], threads, prompt, new, settings.runs):
            output, peak = run_polled(self.transport, self.script, argv, self.environment["tool"], self.paths[i].name)
            outputs.append(output)
            peaks.append(peak or 0)
        record = {"load_ms": None, **tool.parse(outputs)}
        counted = set(record.pop("prompt_tokens_counted", [prompt]))
        if counted != {prompt}:
            raise DeviceError(
                f"{Path(self.program).name} read the prompt for {self.paths[i].name} as {sorted(counted)} tokens, "
                f"not {prompt}: the tokenizer on {self.transport.name} is not the folder's."
            )
        memory = "VmHWM from /proc/<pid>/status, polled every 50 ms while each of its programs ran"
        return {**record, "peak_rss_bytes": max(peaks) * 1024 or None, "memory_method": memory}


def _generation_tool(path: Path) -> GenerationTool:
    """The file's runtime's own generation benchmark; refused (exit 2) when edgekit knows none."""
    backend = backend_for_file(path)
    if backend.generation_tool is None:
        tools = [b for b in backends().values() if b.generation_tool]
        known = [f"{b.generation_tool.name} ({', '.join(b.suffixes)})" for b in tools if b.generation_tool]
        raise UsageError(
            f"{path}: edgekit knows no generation benchmark program of {backend.runtime}.",
            hint=f"--generate --tool runs: {', '.join(known)}. Drop --tool to time it with edgekit's worker.",
        )
    return backend.generation_tool


def _check_context(paths: list[Path], settings: GenerationSettings) -> None:
    """The longest prompt and the new tokens fit each file's context (the worker checks this on the device)."""
    asked = max(settings.prompt_tokens) + settings.new_tokens
    for path in paths:
        describe = backend_for_file(path).describe_generation
        context = describe(path).get("context_length") if describe else None
        if context and asked > context:
            raise UsageError(
                f"A prompt of {max(settings.prompt_tokens)} tokens and {settings.new_tokens} new tokens exceed "
                f"{path.name}'s context of {context} tokens: ask for at most {context} in all."
            )


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
    decode = [float(np.median(r["decode_tokens_per_s"])) for r in reps]
    rss = max((r["peak_rss_bytes"] or 0 for r in reps), default=None)
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
        "load_ms": _rate([r["load_ms"] for r in reps]) if reps[0]["load_ms"] is not None else None,
        "time_to_first_token_ms": _rate(ttft),
        # a tool's whole milliseconds may time a short prompt as 0 ms: no rate then
        "prefill_tokens_per_s": _rate([prompt * 1e3 / t for t in ttft]) if min(ttft) > 0 else None,
        "decode_tokens_per_s": _rate(decode),
        "token_latency_ms": _token_latency(reps),
        "peak_rss_mb": rss / 2**20 if rss else None,
        "memory_method": reps[0].get("memory_method", "the worker process's peak resident set (getrusage)"),
        "size_bytes": size_of(artifact),
        "environment": {**environment, "runtime_versions": reps[0].get("versions", {})},
        **({"tool_settings": reps[0]["tool_settings"]} if "tool_settings" in reps[0] else {}),
    }


def _token_latency(reps: list[dict[str, Any]]) -> dict[str, Any]:
    """Every new token's time where the worker kept them; from a tool, the mean time a token over its
    repetitions (percentiles None: it times each repetition whole)."""
    tokens = [x for r in reps for t in r.get("token_ms", []) for x in t]
    if tokens:
        return stats.latency_summary(tokens)
    rates = [x for r in reps for x in r["decode_tokens_per_s"]]
    mean = float(np.mean([1e3 / x for x in rates]))
    return {"p50": None, "p90": None, "p99": None, "mean": mean, "n": len(rates), "from": "the tool's repetitions"}
