"""An exported file run on a device, as a Runner: edgekit's worker (worker.py --serve) loads it there with the
device's own runtime, and each feed goes over the link as an .npz and comes back as the outputs. `edgekit evaluate
--device` scores a file this way where it cannot run here (a Core ML package, from Linux, on a Mac).

Frames both ways: one kind byte (J: a JSON object, N: an .npz), an 8-byte big-endian length, the payload; arrays
are read with allow_pickle off. Timing is not measured here: the link's latency is in every call.
"""

from __future__ import annotations

import io
import json
import select
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from subprocess import Popen
from typing import IO, Any

import numpy as np

from edgekit.backends.registry import backend_for_file
from edgekit.bench.strategies import WORKER, check_device, push_artifact, worker_inputs
from edgekit.bench.worker import LOAD_FAILED
from edgekit.dispatch import require_artifact
from edgekit.errors import ModelLoadError
from edgekit.runners.base import Runner
from edgekit.sidecar import ArtifactIO, read_io
from edgekit.spec import TensorSpec
from edgekit.transport import Transport, open_transport
from edgekit.transport.base import DeviceError


class RemoteRunner(Runner):
    """Runs `path` on `device` (ssh://user@host[:port], or local: the worker in a process here)."""

    def __init__(
        self, path: Path, device: str, options: Mapping[str, Any], io: ArtifactIO | None = None, threads: int = 1
    ) -> None:
        super().__init__()
        self.path, self.device, self.options, self.threads = require_artifact(Path(path)), device, options, threads
        self.io = io or read_io(self.path)
        self.backend = backend_for_file(self.path)
        self.name = f"{self.backend.runtime} on {device}"
        self.transport: Transport | None = None
        self.proc: Popen | None = None
        self.log: IO[bytes] | None = None
        self.file_inputs: list[tuple[str, str, list[int]]] = []

    def activate_impl(self) -> None:
        transport = open_transport(self.device, **self.options)
        if not transport.streams:
            raise transport.cannot_stream()
        self.transport = transport.__enter__()
        try:
            self._start(transport)
        except BaseException:
            self.deactivate_impl()  # the work folder and a started worker go, whatever stopped the start
            raise

    def _start(self, transport: Transport) -> None:
        check_device(transport, [self.backend])
        argv = [
            transport.python(),
            transport.push(WORKER),
            push_artifact(transport, self.path),
            "--loader",
            transport.push(self.backend.worker_loader, f"{self.backend.runtime}_loader.py"),
            "--threads",
            str(self.threads),
            "--serve",
            *worker_inputs(self.path, self.backend),
        ]
        # the worker's stderr: read when it fails, never a pipe that fills; closed in deactivate_impl
        self.log = tempfile.TemporaryFile()  # noqa: SIM115
        self.proc = transport.start(argv, self.log)
        _, hello = self._receive()
        if "error" in hello:
            raise self._failure(hello)
        self.file_inputs = [(name, dtype, shape) for name, dtype, shape in hello["inputs"]]

    def deactivate_impl(self) -> None:
        if self.proc is not None:
            try:
                self._send(b"Q", b"")
                self.proc.wait(timeout=30)
            except Exception:  # it is gone already, or does not stop: nothing to wait for
                self.proc.kill()
            finally:
                self.proc.wait()
            self.proc = None
        if self.log is not None:
            self.log.close()
            self.log = None
        if self.transport is not None:
            self.transport.__exit__(None, None, None)
            self.transport = None

    def input_specs_impl(self) -> tuple[TensorSpec, ...]:
        if self.io is not None and self.io.input_specs():
            return self.io.input_specs()
        return tuple(
            TensorSpec(name, dtype, tuple(d if d > 0 else f"dim{i}" for i, d in enumerate(shape)))
            for name, dtype, shape in self.file_inputs
        )

    def output_names_impl(self) -> list[str]:
        if self.io is None or not self.io.outputs:
            raise ModelLoadError(f"{self.path} has no sidecar naming its outputs; export it with edgekit.")
        return self.io.output_names()

    def infer_impl(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        arrays: dict[str, Any] = {name: np.asarray(array) for name, array in feed.items()}
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        self._send(b"N", buffer.getvalue())
        kind, answer = self._receive()
        if kind == b"J":
            raise DeviceError(f"{self.path.name} on {self.device}: {answer['error']}")
        names = self.output_names_impl()
        # a loader returns its outputs by position (most) or by name (TensorRT's)
        return {names[int(k)] if k.isdigit() else k: v for k, v in answer.items()}

    def _send(self, kind: bytes, payload: bytes) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        try:
            self.proc.stdin.write(kind + len(payload).to_bytes(8, "big") + payload)
            self.proc.stdin.flush()
        except BrokenPipeError:
            raise self._failure({"error": "the worker stopped"}) from None

    def _receive(self) -> tuple[bytes, Any]:
        """The worker's next frame: its kind, and a JSON object (J) or name -> array mapping (N)."""
        kind, size = self._read(1), int.from_bytes(self._read(8), "big")
        payload = self._read(size)
        if kind == b"J":
            return kind, json.loads(payload)
        with np.load(io.BytesIO(payload), allow_pickle=False) as arrays:
            return kind, {name: arrays[name] for name in arrays.files}

    def _read(self, size: int) -> bytes:
        assert self.proc is not None and self.proc.stdout is not None and self.transport is not None
        out = b""
        while len(out) < size:
            ready, _, _ = select.select([self.proc.stdout], [], [], self.transport.timeout)
            if not ready:
                raise DeviceError(
                    f"The worker on {self.device} did not answer within {self.transport.timeout:.0f}s.",
                    hint="A hung or unreachable device: check it, or raise --timeout.",
                )
            chunk = self.proc.stdout.read1(size - len(out))  # type: ignore[attr-defined]
            if not chunk:
                raise self._failure({"error": "the worker stopped"})
            out += chunk
        return out

    def _failure(self, answer: dict) -> Exception:
        """The worker's error as edgekit's: a file the runtime cannot load is bad input; anything else the device."""
        try:  # a worker that answered with an error exits right after: its status says whose fault it was
            code = self.proc.wait(timeout=30) if self.proc is not None else None
        except subprocess.TimeoutExpired:
            code = None
        if code == LOAD_FAILED:
            return ModelLoadError(f"{self.path}: {answer['error']}", hint=self.backend.load_hint(answer["error"]))
        said = ""
        if self.log is not None:
            self.log.seek(0)
            said = self.log.read().decode(errors="replace").strip()[-500:]
        return DeviceError(f"{self.path.name} on {self.device}: {answer['error']}" + (f" ({said})" if said else ""))
