"""The YAML catalog: every file validates, every DESIGN.md target is there, resolve() reads device rules."""

from __future__ import annotations

import pytest

from edgekit.catalog import devices, get_device, get_target, resolve, schemes, targets
from edgekit.catalog.detect import cpu_flags, local_device
from edgekit.dispatch import availability
from edgekit.errors import UnknownNameError

DESIGN_TARGETS = {
    "tflite-fp32",
    "tflite-fp16",
    "tflite-dynamic",
    "tflite-int8",
    "tflite-int16x8",
    "onnx-fp32",
    "onnx-fp16",
    "onnx-int8-dynamic",
    "onnx-int8",
    "tensorrt-fp32",
    "tensorrt-fp16",
    "tensorrt-int8",
    "pytorch-mobile",
    "pytorch-mobile-int8",
    "executorch-fp32",
    "executorch-int8",
    "openvino-fp32",
    "openvino-fp16",
    "openvino-int8",
    "openvino-int8-weights",
    "ort-genai-fp32",  # causal LMs with their key/value cache
    "ort-genai-int4",
    "executorch-llm-fp32",
    "executorch-llm-8da4w",
    "openvino-llm-int8",
    "openvino-llm-int4",
    "openvino-llm-fp32",  # beyond the design's list: the float folder that proves the route token for token
    "gguf-f32",  # beyond the design's list: the float file that proves the writer token for token
    "gguf-f16",
    "gguf-q8_0",
    "gguf-q4_k_m",
    "coreml-fp32",  # converted on Linux, run on macOS/iOS
    "coreml-fp16",
    "coreml-int8",
    "coreml-palettized",
}


def test_every_design_target_is_in_the_catalog():
    assert set(targets()) == DESIGN_TARGETS


def test_every_device_uses_known_schemes_and_runtimes():
    assert devices(), "no device profiles loaded"
    for device in devices().values():
        assert device.runtimes, device.name
        for rule in device.runtimes.values():
            assert rule.scheme in schemes()


def test_unknown_target_suggests_nearest_names():
    with pytest.raises(UnknownNameError) as e:
        get_target("onnx-int9")
    assert "onnx-int8" in str(e.value)


def test_hardware_aware_schemes_differ_by_device():
    target = get_target("onnx-int8")
    avx2 = resolve(target, get_device("x86-avx2"))
    vnni = resolve(target, get_device("x86-vnni"))
    arm = resolve(target, get_device("arm64"))
    assert avx2.scheme.reduce_range and avx2.scheme.activations.dtype == "uint8"
    assert not vnni.scheme.reduce_range and vnni.scheme.activations.dtype == "uint8"
    assert arm.scheme.activations.dtype == "int8"
    # ops without int8 kernels stay float: LayerNorm and Softmax are never in the int8 list
    for recipe in (avx2, vnni, arm):
        assert "Conv" in recipe.int8_ops and "Softmax" not in recipe.int8_ops
        assert "LayerNormalization" not in recipe.int8_ops


def test_dynamic_int8_leaves_convolutions_float_on_x86():
    recipe = resolve(get_target("onnx-int8-dynamic"), get_device("x86-avx2"))
    assert "MatMul" in recipe.int8_ops and "Conv" not in recipe.int8_ops


def test_tensorrt_uses_symmetric_activations():
    recipe = resolve(get_target("tensorrt-int8"), get_device("jetson-orin"))
    assert recipe.scheme.activations.symmetric and recipe.scheme.weights.symmetric


def test_local_device_matches_cpu_flags():
    device = local_device()
    flags = cpu_flags()
    if "amx_int8" in flags:
        assert device.name == "x86-amx"
    elif "avx512_vnni" in flags or "avx_vnni" in flags:
        assert device.name == "x86-vnni"
    elif "avx2" in flags:
        assert device.name == "x86-avx2"


def test_availability_explains_what_is_missing():
    onnx = availability(get_target("onnx-int8"))
    assert onnx.runs_here and onnx.exports_here and onnx.reason == ""
    trt = availability(get_target("tensorrt-fp16"))
    assert trt.runs_here and trt.exports_here, "stage 1 (the TensorRT-ready ONNX) runs in ONNX Runtime"
    from edgekit.backends.tensorrt.engine import local_build_missing

    if local_build_missing():
        assert trt.engine_here is False and "tensorrt" in trt.engine_reason


def test_built_wheel_ships_the_catalog(tmp_path):
    """targets/ lives beside the package in the checkout; an installed wheel must carry it inside."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    shutil.rmtree(root / "build", ignore_errors=True)  # setuptools builds in-tree: a file removed since would ship
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "wheel"),
            str(root),
        ],
        check=True,
        capture_output=True,
    )
    wheel = next((tmp_path / "wheel").glob("edgekit-*.whl"))
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(tmp_path / "site"), str(wheel)],
        check=True,
        capture_output=True,
    )
    code = (
        "import edgekit.catalog.loader as l; print(l.catalog_dir()); "
        "print(len(l.targets()), len(l.devices()), len(l.schemes()))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path / "site"), "PATH": "/usr/bin:/bin"},
    )
    lines = result.stdout.split()
    assert result.returncode == 0, result.stderr
    counts = [str(len(targets())), str(len(devices())), str(len(schemes()))]
    assert str(tmp_path / "site") in lines[0] and lines[1:] == counts


def test_no_deps_hints_match_requirements_nodeps():
    """The install command an error prints for a --no-deps package pins what the Makefile installs."""
    from pathlib import Path

    from edgekit._lazy import NO_DEPS

    pinned = {
        line.strip()
        for line in (Path(__file__).parents[1] / "requirements-nodeps.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for packages in NO_DEPS.values():
        assert set(packages.split()) <= pinned, packages


def test_devices_command_names_the_detected_profile_and_why(capsys):
    import json

    from helpers import run_cli

    code, out = run_cli(capsys, "devices", "--json")
    assert code == 0
    listing = json.loads(out)
    assert listing["detected"] == local_device().name and "matches" in listing["why"]
    by_name = {d["name"]: d for d in listing["devices"]}
    assert set(by_name) == set(devices()) and by_name["intel-npu"]["runtimes"]["openvino"]["engine"] == "NPU"
    code, out = run_cli(capsys, "devices")
    assert code == 0 and f"detected {local_device().name}" in out
    assert max(len(line) for line in out.splitlines()) <= 80  # fits a terminal (and a pipe: 80 columns)


@pytest.fixture
def user_catalog(tmp_path, monkeypatch):
    """A user's catalog folder in EDGEKIT_CATALOG; the loaded catalog is forgotten before and after."""
    from edgekit.catalog import clear_caches

    (tmp_path / "devices").mkdir()
    monkeypatch.setenv("EDGEKIT_CATALOG", str(tmp_path))
    clear_caches()
    yield tmp_path
    monkeypatch.delenv("EDGEKIT_CATALOG")
    clear_caches()


def test_a_user_catalog_adds_and_overrides_profiles(user_catalog):
    (user_catalog / "devices" / "my-nuc.yaml").write_text(
        "name: my-nuc\ndescription: my NUC's iGPU\narch: x86_64\nos: linux\n"
        "runtimes:\n  openvino: {scheme: nncf_mixed_overflow_fix, engine: GPU, inference_precision: f16}\n"
    )
    (user_catalog / "devices" / "x86-avx2.yaml").write_text(
        "name: x86-avx2\ndescription: overridden\narch: x86_64\nos: linux\n"
        "runtimes:\n  onnxruntime: {scheme: u8s8, int8_ops: [MatMul]}\n"
    )
    recipe = resolve(get_target("openvino-int8"), get_device("my-nuc"))
    assert recipe.engine == "GPU" and recipe.scheme_name == "nncf_mixed_overflow_fix"
    assert get_device("x86-avx2").description == "overridden"
    assert resolve(get_target("onnx-int8"), get_device("x86-avx2")).int8_ops == ("MatMul",)
    assert "x86-vnni" in devices()  # the built-in ones stay


def test_a_user_profile_is_validated_like_the_built_in_ones(user_catalog):
    from edgekit.errors import EdgekitError

    (user_catalog / "devices" / "bad.yaml").write_text(
        "name: bad\ndescription: x\narch: x86_64\nos: linux\nruntimes:\n  openvino: {scheme: no_such_scheme}\n"
    )
    with pytest.raises(EdgekitError, match="unknown scheme 'no_such_scheme'"):
        devices()


def test_catalog_option_reaches_the_commands(tmp_path):
    from helpers import run_cli_process

    (tmp_path / "devices").mkdir()
    (tmp_path / "devices" / "my-board.yaml").write_text(
        "name: my-board\ndescription: b\narch: aarch64\nos: linux\nruntimes:\n  litert: {scheme: tflite_int8}\n"
    )
    result = run_cli_process("--catalog", tmp_path, "devices", "--json")
    assert result.returncode == 0, result.stderr
    assert "my-board" in result.stdout


def test_a_missing_backend_stack_names_the_backends_own_extra(monkeypatch):
    """A backend names its extra where it imports its stack; the shared table in _lazy does not list it."""
    import sys
    from pathlib import Path

    import tomllib

    from edgekit._lazy import EXTRAS
    from edgekit.backends.openvino.stack import import_stack
    from edgekit.backends.registry import backends
    from edgekit.errors import MissingDependencyError

    extras = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]
    assert {b.extra for b in backends().values() if b.extra} <= set(extras["optional-dependencies"])
    assert "openvino" not in EXTRAS
    monkeypatch.setitem(sys.modules, "openvino", None)  # importing it now fails as if it were not installed
    with pytest.raises(MissingDependencyError, match=r"edgekit\[openvino\]"):
        import_stack("openvino", "Testing")
