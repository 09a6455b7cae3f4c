"""Installable the way people expect: pyproject.toml names ranges, constraints.txt the exact versions tested
together (every range admits its pin), and the built wheel installs into a fresh venv and works there."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from onnx_graphs import linear_classifier
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from edgekit import doctor

ROOT = Path(__file__).resolve().parent.parent


def _requirements() -> list[tuple[str, Requirement]]:
    """(group, requirement) of the installed edgekit's metadata: "core" or the extra that asks for it."""
    from importlib import metadata

    out = []
    for text in metadata.requires("edgekit") or []:
        extra = re.search(r'extra == "([^"]+)"', text)
        requirement = Requirement(text)
        if requirement.name != "edgekit":
            out.append((extra[1] if extra else "core", requirement))
    return out


def test_pyproject_names_ranges_and_constraints_the_pins():
    pins = doctor.tested_versions()  # constraints.txt, as edgekit doctor reads it
    exact = [
        f"{group}: {r.name}{r.specifier}"
        for group, r in _requirements()
        if any(s.operator == "==" for s in r.specifier)
    ]
    assert exact == ["torch: torch==2.13.0"], exact  # torch alone: any other resolution is the CUDA build
    unpinned = [f"{group}: {r.name}" for group, r in _requirements() if canonicalize_name(r.name) not in pins]
    assert unpinned == [], f"add them to constraints.txt: {unpinned}"
    outside = [
        f"{r} vs {pins[canonicalize_name(r.name)]}"
        for _, r in _requirements()
        if not r.specifier.contains(pins[canonicalize_name(r.name)].split("+")[0], prereleases=True)
    ]
    assert outside == [], outside


@pytest.mark.network  # pip reaches the package index: make test-install, never make test (tests stay on loopback)
def test_the_wheel_installs_into_a_fresh_venv_and_works(tmp_path):
    """Build the wheel, install it with the data extra and the constraints into a new venv (no edgekit checkout
    on its path), then run doctor, export and evaluate there with the venv's own edgekit."""
    probe = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(tmp_path / "probe"),
                            "-c", str(ROOT / "constraints.txt"), "click"], capture_output=True, text=True)  # fmt: skip
    if probe.returncode != 0:
        pytest.skip(f"no package index reachable to install into a fresh venv: {probe.stderr.strip()[-200:]}")
    wheels = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels),
                    str(ROOT)], check=True, capture_output=True)  # fmt: skip
    wheel = next(wheels.glob("edgekit-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    install = subprocess.run([venv / "bin" / "pip", "install", "-q", "-c", ROOT / "constraints.txt", f"{wheel}[data]"],
                             capture_output=True, text=True)  # fmt: skip
    assert install.returncode == 0, install.stderr[-3000:]

    def edgekit(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([venv / "bin" / "edgekit", *args], cwd=tmp_path, capture_output=True, text=True)

    doctor = edgekit("doctor", "--json")
    report = json.loads(doctor.stdout)
    status = {p["name"]: p["status"] for p in report["packages"]}
    assert {status[name] for name in ("click", "onnx", "onnxruntime", "scikit-learn")} == {"ok"}, status
    torch_fix = next(p["fix"] for p in report["packages"] if p["name"] == "torch")
    assert status["torch"] == "missing" and "download.pytorch.org/whl/cpu" in torch_fix
    model = linear_classifier(tmp_path / "linear.onnx")
    x = np.random.default_rng(0).standard_normal((64, 8)).astype(np.float32)
    np.savez(tmp_path / "data.npz", x=x, labels=np.argmax(x[:, :4], axis=1))
    done = edgekit("export", str(model), "-t", "onnx-int8", "--calib", "data.npz", "-o", "out")
    assert done.returncode == 0, done.stderr[-2000:]
    done = edgekit("evaluate", "out/linear-onnx-int8.onnx", "--data", "data.npz", "--json", "-")
    assert done.returncode == 0 and json.loads(done.stdout)["metrics"]["samples"] == 64, done.stderr[-2000:]
    done = edgekit("export", str(model), "-t", "openvino-fp32", "-o", "out")  # an extra that is not installed
    assert done.returncode == 2 and "edgekit[openvino]" in done.stderr, done.stderr[-2000:]
