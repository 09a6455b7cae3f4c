"""Helpers for tests: run the CLI in-process, evaluate an artifact on held-out digits."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgekit.cli import main

FIXTURES = Path(__file__).parent / "fixtures"


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


def fixture_text(name: str) -> str:
    """A tool output kept in tests/fixtures/, without its '# ' lines (where it came from)."""
    return "\n".join(line for line in (FIXTURES / name).read_text().splitlines() if not line.startswith("# "))


def stand_in_adb(tmp_path: Path, monkeypatch) -> Path:
    """tests/fixtures/stand_in_adb.py as an `adb` client whose device is the folder tmp_path/device; every call
    it takes is logged as a JSON line to tmp_path/adb.log."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    adb = bin_dir / "adb"
    adb.write_text(f"#!{sys.executable}\n" + (FIXTURES / "stand_in_adb.py").read_text())
    adb.chmod(0o755)
    monkeypatch.setenv("STAND_IN_ADB_ROOT", str(tmp_path / "device"))
    monkeypatch.setenv("STAND_IN_ADB_LOG", str(tmp_path / "adb.log"))
    return adb
