"""edgekit doctor on this machine: every pinned package found at its tested version, every target ready."""

from __future__ import annotations

import json
import sys

from helpers import run_cli

from edgekit.catalog import targets


def test_doctor_reports_this_environment(capsys):
    code, out = run_cli(capsys, "doctor", "--json")
    assert code == 0
    found = json.loads(out)
    by_name = {p["name"]: p for p in found["packages"]}
    assert by_name["onnxruntime"]["extra"] == "core" and by_name["openvino"]["extra"] == "openvino"
    assert by_name["onnx2tf"]["extra"] == "--no-deps"
    # an extra `all` leaves out (llamacpp compiles llama.cpp) may be missing: optional, with its fix
    optional = {p["extra"] for p in found["packages"] if p["status"] == "optional"}
    assert optional <= {"llamacpp"} and all(p["fix"] for p in found["packages"] if p["status"] == "optional")
    assert all(p["status"] == "ok" and p["fix"] is None for p in found["packages"] if p["extra"] not in optional), [
        p for p in found["packages"] if p["status"] not in ("ok", "optional")
    ]
    without = {t for t in targets() if t.startswith("gguf-")} if optional else set()
    assert {t["name"] for t in found["targets"] if not t["exports_here"]} == without
    elsewhere = {t["name"]: t["why_not"] for t in found["targets"] if not t["runs_here"] and t["name"] not in without}
    if sys.platform != "darwin":  # Core ML packages are made here and run on Apple's OSes, which says so
        assert set(elsewhere) == {t for t in targets() if t.startswith("coreml-")}
        assert all("macOS and iOS only" in why for why in elsewhere.values())
    else:
        assert elsewhere == {}
    assert found["warnings"] == []  # the venv has no openvino-telemetry (installed --no-deps)


def test_a_missing_or_different_package_gets_its_fix():
    from edgekit.doctor import Package

    missing = Package("torch", "torch", "2.13.0", None, "pip install ... 'edgekit[torch]'")
    assert missing.status == "missing"
    assert Package("torch", "torch", "2.13.0", "2.13.0+cpu", None).status == "ok"  # a local build tag
    assert Package("numpy", "core", "2.4.6", "1.26.4", "pip install edgekit").status == "differs"
    assert (
        Package("llama-cpp-python", "llamacpp", "0.3.36", None, "pip install ...", optional=True).status == "optional"
    )


def test_doctor_table_names_what_is_ready(capsys):
    code, out = run_cli(capsys, "doctor")
    assert code == 0 and "targets that export and run here" in out and "openvino-int8" in out
