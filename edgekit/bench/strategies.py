"""How one benchmark repetition runs on a device: edgekit's Python worker, or the runtime's own native tool.

Both return one record per repetition with the same fields, so one loop (harness.benchmark) drives
either and one function (harness.summarize) turns the records into the JSON contract.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from edgekit.backends.base import Backend
from edgekit.backends.registry import backend_for_file
from edgekit.bench.worker import LOAD_FAILED
from edgekit.dispatch import artifact_files
from edgekit.errors import ModelLoadError, UsageError
from edgekit.sidecar import read_io
from edgekit.transport.base import DeviceError, Transport

BENCH_DIR = Path(__file__).parent
WORKER = BENCH_DIR / "worker.py"
SYNTHETIC = BENCH_DIR.parent / "synthetic.py"  # the worker invents its inputs with edgekit's one rule
PEAK_SCRIPT = BENCH_DIR / "peak_rss.sh"


class PythonWorker:
    """A fresh Python process per repetition running worker.py with the artifact's backend loader."""

    def __init__(self, transport: Transport, paths: list[Path], settings) -> None:
        self.transport, self.paths, self.settings = transport, paths, settings
        self.backends = [backend_for_file(p) for p in paths]
        if transport.name == "local":
            _refuse_what_cannot_run_here(paths, self.backends)
        self.environment = check_device(transport, self.backends)
        self.worker = transport.push(WORKER)
        self.synthetic = transport.push(SYNTHETIC)
        # every backend's loader is called worker_loader.py: each is pushed under its runtime's name
        self.loaders = {b.runtime: transport.push(b.worker_loader, f"{b.runtime}_loader.py") for b in self.backends}
        self.remote = [push_artifact(transport, p, i) for i, p in enumerate(paths)]
        self.extra = [worker_inputs(p, b) for p, b in zip(paths, self.backends)]

    def batches(self) -> tuple[int, ...]:
        return self.settings.batches

    def run(self, i: int, threads: int, batch: int, rep: int) -> dict[str, Any]:
        s, t = self.settings, self.transport
        argv = [
            t.python(),
            self.worker,
            self.remote[i],
            "--loader",
            self.loaders[self.backends[i].runtime],
            "--synthetic",
            self.synthetic,
            "--threads",
            str(threads),
            "--batch",
            str(batch),
            "--warmup",
            str(s.warmup),
            "--min-runs",
            str(s.min_runs),
            "--min-time",
            str(s.min_time),
            "--seed",
            str(s.seed + rep),
            "--free-dim",
            str(s.seq_len),
            *self.extra[i],
        ]
        result = t.run(argv)
        name = self.paths[i].name
        try:
            out = json.loads(result.stdout.strip().splitlines()[-1])
        except (json.JSONDecodeError, IndexError):
            raise DeviceError(
                f"The benchmark worker failed on {t.name} for {name}: {_last_line(result.stderr or result.stdout)}"
            ) from None
        if "error" in out and result.returncode == LOAD_FAILED:  # the file, not the device: bad input (exit 2)
            hint = backend_for_file(self.paths[i]).load_hint(out["error"])
            raise ModelLoadError(f"{self.paths[i]}: {out['error']}", hint=hint)
        if "error" in out:
            raise DeviceError(f"{name} on {t.name}: {out['error']}")
        return out


class NativeTool:
    """The runtime's own benchmark program (benchmark_model, onnxruntime_perf_test, executor_runner),
    run under a VmHWM poller; aggregates only, no raw samples."""

    def __init__(self, transport: Transport, paths: list[Path], settings, tool: str | None) -> None:
        self.transport, self.paths, self.settings = transport, paths, settings
        self.backends = [backend_for_file(p) for p in paths]
        lacking = sorted({p.suffix for p, b in zip(paths, self.backends) if b.native_tool is None})
        if lacking:
            known = [s for b in self.backends if b.native_tool for s in b.suffixes]
            raise UsageError(
                f"No native benchmark tool is known for {', '.join(lacking)} files.",
                hint=f"Supported: {', '.join(sorted(set(known)))}.",
            )
        self.script = transport.push(PEAK_SCRIPT)  # run as `sh SCRIPT PROGRAM ARGS...`
        if tool is None:  # the device's own install (trtexec on a Jetson): every file's tool can locate it
            native = self.backends[0].native_tool
            assert native is not None and native.locate is not None
            self.tool = native.locate(transport)
        else:
            self.tool = place_tool(transport, tool)
        self.tool_name = Path(self.tool).name
        self.remote = [push_artifact(transport, p, i) for i, p in enumerate(paths)]
        self.environment: dict[str, Any] = {"device": transport.name}

    def batches(self) -> tuple[int, ...]:
        return (1,)  # the native tools feed the file's own input shapes

    def run(self, i: int, threads: int, batch: int, rep: int) -> dict[str, Any]:
        native = self.backends[i].native_tool
        assert native is not None
        argv = native.command(self.tool, self.remote[i], threads, self.settings.min_runs, self.settings.warmup)
        argv += native.extra_args(self.paths[i])
        output, peak = run_polled(self.transport, self.script, argv, self.tool_name, self.paths[i].name)
        parsed = native.parse(output)
        parsed["peak_rss_kb"] = peak
        parsed["memory_method"] = "VmHWM from /proc/<pid>/status on the device"
        self.environment["tool"] = parsed["tool"]
        return parsed


def check_tool_argument(device: str, tool: str | None) -> None:
    """Before any device is touched: adb devices run only the runtime's own program (they have no Python), a
    local binary to push; a --tool with a path must exist (a bare name is looked up on the device's PATH)."""
    if device.startswith("adb://") and not (tool and Path(tool).is_file()):
        raise UsageError(
            "Benchmarking over adb runs the runtime's own tool on the device: pass --tool PATH.",
            hint="e.g. --tool android_aarch64_benchmark_model (TFLite), onnxruntime_perf_test or llama-bench "
            "built for Android.",
        )
    if tool and "/" in tool and not Path(tool).is_file():
        raise UsageError(f"--tool {tool} does not exist.")


def place_tool(transport: Transport, tool: str) -> str:
    """Where the device runs `tool`: a local binary (benchmark_model built for Android) pushed and made
    executable, or a name the device has on its PATH (benchmark_app beside OpenVINO)."""
    if Path(tool).is_file():
        placed = transport.push(Path(tool))
        if placed != str(Path(tool).resolve()):  # a copy on the device (never the user's own file here)
            transport.run(["chmod", "755", placed])
        return placed
    found = transport.find_tool((tool,))
    if found is None:
        raise UsageError(f"{transport.name} has no '{tool}' on its PATH, and it is no local file.")
    return found


def run_polled(
    transport: Transport, script: str, argv: list[str], program: str, artifact: str
) -> tuple[str, int | None]:
    """Run `argv` (the native program `program` on `artifact`) under the pushed VmHWM poller (peak_rss.sh): its
    output and its peak resident set in kB; a DeviceError with the output's end when it fails."""
    result = transport.run(["sh", script, *argv])
    if result.returncode != 0:
        missing = "error while loading shared libraries" in result.stdout
        raise DeviceError(
            f"{program} failed on {transport.name} for {artifact} (exit {result.returncode}): "
            f"{result.stdout.strip()[-400:]}",
            hint="The program needs libraries that were not pushed with it: build it statically (e.g. llama.cpp: "
            "cmake -B build -DBUILD_SHARED_LIBS=OFF) so that the one file runs on the device."
            if missing
            else None,
        )
    match = re.search(r"EDGEKIT_VMHWM_KB=(\d+)", result.stdout)
    return result.stdout, int(match.group(1)) if match else None


def push_artifact(transport: Transport, path: Path, slot: int = 0) -> str:
    """Copy an artifact's companions (an OpenVINO .xml's .bin), then the artifact, into a folder of the device's
    work folder that is its own (`slot`): two artifacts may share a file name (a/model.onnx, b/model.onnx), and
    in one folder the second would replace the first and be timed twice."""
    folder = f"artifact-{slot}"
    transport.run(["mkdir", "-p", f"{transport.workdir}/{folder}"])
    for part in artifact_files(path)[1:]:
        transport.push(part, f"{folder}/{part.name}")
    return transport.push(path, f"{folder}/{path.name}")


def _refuse_what_cannot_run_here(paths: list[Path], backends: list[Backend]) -> None:
    """A file this machine cannot run (Core ML off macOS) is refused before any worker starts (the device probe
    alone imported coremltools for 12 s to learn it)."""
    for path, backend in zip(paths, backends):
        elsewhere = backend.cannot_run_here()
        if elsewhere:
            where = elsewhere.split(". ")[0]  # its first sentence: where its files run
            raise ModelLoadError(f"{path}: the runtime cannot load it here: {where}.", hint=backend.load_hint(where))


def check_device(transport: Transport, backends: list[Backend]) -> dict[str, Any]:
    """Fail early, naming what the device lacks: Python, numpy, the runtime for each artifact type."""
    modules = ["numpy", *sorted({m for b in backends for m in b.runtime_modules})]
    probe = (
        "import importlib.util,sys;m=[n for n in sys.argv[1:] if importlib.util.find_spec(n) is None];"
        "print(','.join(m))"
    )
    result = transport.run([transport.python(), "-c", probe, *modules], timeout=120)
    if result.returncode != 0:
        raise DeviceError(
            f"Python '{transport.python()}' does not run on {transport.name}: "
            f"{(result.stderr or result.stdout).strip()[:300]}",
            hint="Point to a Python 3 interpreter on the device with --python.",
        )
    missing = [m for m in result.stdout.strip().split(",") if m]
    if missing:
        raise DeviceError(
            f"{transport.name} lacks the Python package(s) {', '.join(missing)} under {transport.python()}.",
            hint="Install them on the device (e.g. pip install onnxruntime numpy), or pass --python.",
        )
    versions = [transport.python(), transport.push(WORKER), "--env", *modules[1:]]  # numpy is always probed
    return json.loads(transport.run(versions, timeout=120).stdout)


def _last_line(text: str) -> str:
    """A failed worker's last line: the exception its traceback ends with (never the middle of the traceback)."""
    return (text.strip().splitlines() or ["no output"])[-1][:500]


def worker_inputs(artifact: Path, backend: Backend) -> list[str]:
    """`--inputs` for files that record no input names (.ptl, .pte): the tensors from the sidecar; `--names`
    for files that renamed the source's inputs (the synthetic values follow the source's names)."""
    io = read_io(artifact)
    renamed = {
        e.file_tensor["name"]: e.name
        for e in (io.inputs if io else [])
        if e.file_tensor and e.file_tensor.get("name") not in (None, e.name)
    }
    names = ["--names", json.dumps(renamed)] if renamed else []
    if not backend.needs_sidecar_io:
        return names
    if io is None:
        raise UsageError(f"{artifact} has no sidecar with its input tensors; export it with edgekit.")
    specs = [[s.name, s.dtype, [d if isinstance(d, int) else -1 for d in s.shape]] for s in io.input_specs()]
    return ["--inputs", json.dumps(specs), *names]
