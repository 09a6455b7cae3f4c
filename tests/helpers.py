"""Helpers for tests: run the CLI in-process, evaluate an artifact on held-out digits."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from edgekit.cli import main


def run_cli(capsys, *args: str) -> tuple[int, str]:
    """Run `edgekit ARGS` in-process as a user would; returns (exit code, stdout + stderr)."""
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out + captured.err


def ssh_device_args(sshd, python: str = sys.executable, device: str = "--device") -> list[str]:
    """The flags that reach the loopback sshd as a device: `--device URL --identity KEY --python P --ssh-option ...`,
    or with device="--run-on" export's `--run-on URL --run-on-identity KEY ...`."""
    prefix = "--" if device == "--device" else f"{device}-"
    options = [arg for o in sshd.ssh_options for arg in (f"{prefix}ssh-option", o)]
    return [device, sshd.url, f"{prefix}identity", str(sshd.key), f"{prefix}python", python, *options]


def run_cli_process(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run `edgekit ARGS` in a fresh interpreter (for what must hold of the real process)."""
    return subprocess.run(
        [sys.executable, "-m", "edgekit", *map(str, args)], capture_output=True, text=True, timeout=timeout
    )


def artifact_accuracy(path, x: np.ndarray, y: np.ndarray, input_name: str = "image") -> float:
    from edgekit.dispatch import open_runner

    with open_runner(path) as runner:
        logits = np.concatenate(
            [next(iter(runner.infer({input_name: x[i : i + 128]}).values())) for i in range(0, len(x), 128)]
        )
    return float((logits.argmax(-1) == y).mean())
