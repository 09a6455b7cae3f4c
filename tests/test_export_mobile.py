"""PyTorch Mobile (lite interpreter) targets: real exports of the trained models, run in the lite interpreter."""
from __future__ import annotations

import pytest

from edgekit import zoo
from edgekit.errors import NoRouteError
from edgekit.exporter import export
from edgekit.spec import parse_input_spec
from helpers import artifact_accuracy

IMAGE = (parse_input_spec(zoo.DIGITS_INPUT),)


@pytest.fixture(scope="module")
def mobile(tmp_path_factory, cnn, mlp, transformer, calib_npz):
    out = tmp_path_factory.mktemp("mobile")
    models = {"digits_mlp": mlp, "digits_cnn": cnn, "tiny_transformer": transformer}
    return {(name, t): export(f"edgekit.zoo:{name}", t, out, calib=calib_npz, weights=weights, inputs=IMAGE)
            for name, (_, weights) in models.items() for t in ("pytorch-mobile", "pytorch-mobile-int8")}


@pytest.mark.parametrize("model", ["digits_mlp", "digits_cnn", "tiny_transformer"])
def test_lite_interpreter_files_keep_accuracy(mobile, digits, model):
    _, _, x_test, y_test = digits
    fp32, int8 = mobile[model, "pytorch-mobile"], mobile[model, "pytorch-mobile-int8"]
    assert fp32.artifact.suffix == ".ptl" and fp32.parity.passed and int8.parity.passed
    assert fp32.parity.outputs[0].max_abs < 1e-4  # same kernels as the source
    acc = artifact_accuracy(fp32.artifact, x_test, y_test)
    assert acc > 0.85
    assert artifact_accuracy(int8.artifact, x_test, y_test) >= acc - 0.015


def test_sidecar_says_how_the_file_was_made(mobile):
    route = mobile["digits_cnn", "pytorch-mobile"].sidecar["route"][0]
    assert route["step"] == "torch->ptl" and route["torchscript"] == "script"
    assert route["optimize_for_mobile"] in ("applied", "skipped: this torch build has no XNNPACK")
    int8 = mobile["digits_cnn", "pytorch-mobile-int8"].sidecar
    assert int8["route"][0]["quantization"]["quantized_layer_types"] == ["Linear"]
    assert int8["quantization"]["scheme_name"] == "torch_dynamic_qint8"
    assert int8["size_bytes"] < 0.6 * mobile["digits_cnn", "pytorch-mobile"].sidecar["size_bytes"]


def test_tracing_when_scripting_fails(tmp_path, calib_npz):
    """A forward with Python-only constructs cannot be scripted: the export traces and says so."""
    result = export("tests_models:unscriptable", "pytorch-mobile", tmp_path, calib=calib_npz, inputs=IMAGE)
    route = result.sidecar["route"][0]
    assert route["torchscript"] == "trace" and route["script_failed"]
    assert result.parity.passed


def test_quantized_engine_follows_the_device(tmp_path, cnn, calib_npz):
    result = export("edgekit.zoo:digits_cnn", "pytorch-mobile-int8", tmp_path, calib=calib_npz, weights=cnn[1],
                    inputs=IMAGE, device="arm64")
    assert result.sidecar["route"][0]["quantization"]["engine"] == "qnnpack"


def test_keras_source_has_no_route_to_pytorch_mobile(tmp_path):
    import keras

    inp = keras.Input((4,), name="x")
    path = tmp_path / "k.keras"
    keras.Model(inp, keras.layers.Dense(2)(inp)).save(path)
    with pytest.raises(NoRouteError, match="From keras, edgekit can produce"):
        export(path, "pytorch-mobile", tmp_path / "out")


def test_benchmark_runs_lite_interpreter_files(mobile):
    from edgekit.bench.harness import Settings, benchmark

    files = [mobile["digits_cnn", t].artifact for t in ("pytorch-mobile", "pytorch-mobile-int8")]
    runs, error = benchmark(files, "local", Settings(batches=(4,), min_runs=20, min_time=0.05, processes=2))
    assert error is None and len(runs) == 2
    assert all(r["inputs"]["image"] == [4, 1, 8, 8] and len(r["samples_ms"]) >= 40 for r in runs)
    assert runs[0]["environment"]["runtime_versions"]["torch"].startswith("2.13")
