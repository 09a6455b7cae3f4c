"""PyTorch Mobile (lite interpreter) and ExecuTorch targets: real exports of the trained models, run in
the lite interpreter and the ExecuTorch runtime."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from helpers import artifact_accuracy, run_cli

from edgekit.errors import NoRouteError, UsageError
from edgekit.exporter import export
from edgekit.spec import parse_input_spec
from edgekit_demo import zoo

IMAGE = (parse_input_spec(zoo.DIGITS_INPUT),)


@pytest.fixture(scope="module")
def mobile(tmp_path_factory, cnn, mlp, transformer, calib_npz):
    out = tmp_path_factory.mktemp("mobile")
    models = {"digits_mlp": mlp, "digits_cnn": cnn, "tiny_transformer": transformer}
    return {
        (name, t): export(f"edgekit_demo.zoo:{name}", t, out, calib=calib_npz, weights=weights, inputs=IMAGE)
        for name, (_, weights) in models.items()
        for t in ("pytorch-mobile", "pytorch-mobile-int8")
    }


def test_static_int8_carries_a_residual_add_a_concatenation_and_a_mean(digits, calib_npz, tmp_path):
    """FX dequantizes around the ops it has no int8 kernel for (add, cat, mean): static int8, not dynamic."""
    import torch

    x_train, y_train, x_test, y_test = digits
    torch.manual_seed(0)
    weights = zoo.save_weights(zoo.train(zoo.digits_residual_cnn(), x_train, y_train, epochs=4), tmp_path / "res.pt")
    result = export("edgekit_demo.zoo:digits_residual_cnn", "pytorch-mobile-int8", tmp_path, calib=calib_npz,
                    weights=weights, inputs=IMAGE)  # fmt: skip
    assert result.parity.passed and result.sidecar["quantization"]["applied"] == "static"
    assert result.sidecar["route"][-1]["quantization"]["quantized_module_types"] == ["Conv2d", "Linear"]
    fp32 = export("edgekit_demo.zoo:digits_residual_cnn", "pytorch-mobile", tmp_path, weights=weights, inputs=IMAGE)
    accuracy = artifact_accuracy(fp32.artifact, x_test, y_test)
    assert accuracy > 0.85 and artifact_accuracy(result.artifact, x_test, y_test) >= accuracy - 0.015


def test_a_mobilenet_style_cnn_is_static_int8_through_depthwise_convolutions(tmp_path):
    """The benchmarks' MobileNet-style CNN (grouped 3x3 convolutions, residual adds, batch norms to fold) at 32x32:
    every convolution int8, calibrated, the file within the parity gate."""
    import numpy as np

    x_train, _, _, _ = zoo.digits_upscaled(32)
    np.savez(tmp_path / "calib.npz", image=x_train[:64])
    result = export("edgekit_demo.zoo:digits_mobilenet", "pytorch-mobile-int8", tmp_path, calib=tmp_path / "calib.npz",
                    inputs=(parse_input_spec("image:float32:batchx1x32x32"),))  # fmt: skip
    step = result.sidecar["route"][-1]
    assert result.parity.passed and result.sidecar["quantization"]["applied"] == "static"
    assert step["quantization"]["quantized_module_types"] == ["Conv2d", "ConvReLU2d", "Linear"]  # ReLUs fused


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
    assert route["step"] == "torch->ptl" and route["torchscript"] == "script", route  # why scripting failed
    assert route["optimize_for_mobile"] in ("applied", "skipped: this torch build has no XNNPACK")
    int8 = mobile["digits_cnn", "pytorch-mobile-int8"].sidecar
    # with --calib and a model FX can trace, int8 is static: convolutions too, fused with their ReLU
    assert int8["route"][0]["quantization"]["method"].endswith("(static, calibrated)")
    assert {"ConvReLU2d", "LinearReLU", "Linear"} <= set(int8["route"][0]["quantization"]["quantized_module_types"])
    assert int8["size_bytes"] < 0.6 * mobile["digits_cnn", "pytorch-mobile"].sidecar["size_bytes"]


def test_dynamic_int8_without_calibration_data(tmp_path, cnn):
    result = export("edgekit_demo.zoo:digits_cnn", "pytorch-mobile-int8", tmp_path, weights=cnn[1], inputs=IMAGE)
    quantization = result.sidecar["route"][0]["quantization"]
    assert quantization["quantized_layer_types"] == ["Linear"]
    assert "no --calib data" in quantization["static_skipped"]
    assert result.sidecar["quantization"]["scheme_name"] == "torch_qint8"


def test_tracing_when_scripting_fails(tmp_path, calib_npz):
    """A forward with Python-only constructs cannot be scripted: the export traces and says why, the second
    time in a process too (not "Can't redefine method", what torch's type cache said once it held the model's
    half-compiled type)."""
    for out in ("first", "second"):
        result = export("tests_models:unscriptable", "pytorch-mobile", tmp_path / out, calib=calib_npz, inputs=IMAGE)
        route = result.sidecar["route"][0]
        assert route["torchscript"] == "trace" and "keyword-arg expansion" in route["script_failed"], route
        assert result.parity.passed


_INTERRUPT_THEN_EXPORT = """
import sys
import edgekit

CNN, IMAGE = "edgekit_demo.zoo:digits_cnn", "image:float32:1x1x8x8"

def interrupt_mid_compile(frame, event, arg):  # Ctrl-C at the moment TorchScript compiles a call
    if event == "call" and frame.f_code.co_name == "try_compile_fn":
        raise KeyboardInterrupt

sys.settrace(interrupt_mid_compile)
try:
    edgekit.export(CNN, "pytorch-mobile", sys.argv[1] + "/first", inputs=IMAGE)
except KeyboardInterrupt:
    print("interrupted")
sys.settrace(None)
again = edgekit.export(CNN, "pytorch-mobile", sys.argv[1] + "/again", inputs=IMAGE)
print(again.sidecar["route"][0])
"""


def test_an_interrupted_export_does_not_leave_later_exports_traced(tmp_path):
    """Ctrl-C while TorchScript compiles a layer left that layer's type half-defined in torch's process-wide
    cache, and every later export of the model in that process was traced ("Can't redefine method: forward
    on class ...Conv2d"): how test_sidecar_says_how_the_file_was_made once saw a traced CNN. A fresh process,
    so that the layers are compiled for the first time."""
    done = subprocess.run(
        [sys.executable, "-c", _INTERRUPT_THEN_EXPORT, str(tmp_path)], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    interrupted, route = done.stdout.splitlines()[-2:]
    assert interrupted == "interrupted" and "'torchscript': 'script'" in route, done.stdout[-2000:]
    assert not (tmp_path / "first").exists() or not any((tmp_path / "first").iterdir())


def test_quantized_engine_follows_the_device(tmp_path, cnn, calib_npz):
    result = export(
        "edgekit_demo.zoo:digits_cnn",
        "pytorch-mobile-int8",
        tmp_path,
        calib=calib_npz,
        weights=cnn[1],
        inputs=IMAGE,
        device="arm64",
    )
    assert result.sidecar["route"][0]["quantization"]["engine"] == "qnnpack"


@pytest.mark.parametrize("target", ["pytorch-mobile", "executorch-fp32"])
def test_keras_source_has_no_route_to_torch_runtimes(tmp_path, target):
    import keras

    inp = keras.Input((4,), name="x")
    path = tmp_path / "k.keras"
    keras.Model(inp, keras.layers.Dense(2)(inp)).save(path)
    with pytest.raises(NoRouteError, match="From keras, edgekit can produce"):
        export(path, target, tmp_path / "out")


def test_benchmark_runs_lite_interpreter_files(mobile):
    from edgekit.bench.harness import Settings, benchmark

    files = [mobile["digits_cnn", t].artifact for t in ("pytorch-mobile", "pytorch-mobile-int8")]
    runs, error = benchmark(files, "local", Settings(batches=(4,), min_runs=20, min_time=0.05, processes=2))
    assert error is None and len(runs) == 2
    assert all(r["inputs"]["image"] == [4, 1, 8, 8] and len(r["samples_ms"]) >= 40 for r in runs)
    assert runs[0]["environment"]["runtime_versions"]["torch"].startswith("2.13")


EXECUTORCH = ("executorch-fp32", "executorch-int8")


@pytest.fixture(scope="module")
def pte(tmp_path_factory, cnn, transformer, calib_npz):
    out = tmp_path_factory.mktemp("pte")
    models = {"digits_cnn": cnn, "tiny_transformer": transformer}
    return {
        (name, t): export(f"edgekit_demo.zoo:{name}", t, out, calib=calib_npz, weights=weights, inputs=IMAGE)
        for name, (_, weights) in models.items()
        for t in EXECUTORCH
    }


@pytest.mark.parametrize("model", ["digits_cnn", "tiny_transformer"])
def test_executorch_files_keep_accuracy(pte, digits, model):
    _, _, x_test, y_test = digits
    fp32, int8 = pte[model, "executorch-fp32"], pte[model, "executorch-int8"]
    assert fp32.artifact.suffix == ".pte" and fp32.parity.passed and int8.parity.passed
    acc = artifact_accuracy(fp32.artifact, x_test, y_test)
    assert acc > 0.8
    assert artifact_accuracy(int8.artifact, x_test, y_test) >= acc - 0.015
    assert int8.sidecar["size_bytes"] < 0.75 * fp32.sidecar["size_bytes"]


def test_xnnpack_takes_the_convolutions_and_linears(pte):
    fp32 = pte["digits_cnn", "executorch-fp32"].sidecar["route"][0]["delegation"]
    assert fp32["delegated_ops"]["aten.convolution.default"] == 2
    assert fp32["delegated_ops"]["aten.linear.default"] == 2
    assert fp32["non_delegated_nodes"] == 0  # the whole CNN runs in XNNPACK
    int8 = pte["digits_cnn", "executorch-int8"].sidecar["route"][0]
    assert int8["quantization"]["quantizer"] == "XNNPACKQuantizer" and int8["quantization"]["per_channel_weights"]
    assert int8["delegation"]["delegated_ops"]["quantized_decomposed.dequantize_per_channel.default"] == 4
    # the transformer's LayerNorm stays on ExecuTorch's portable kernels, and the sidecar says so
    transformer = pte["tiny_transformer", "executorch-fp32"].sidecar["route"][0]["delegation"]
    assert transformer["delegated_ops"]["aten.linear.default"] >= 4
    assert "native_layer_norm.out" in transformer["non_delegated_ops"]


def test_sources_executorch_cannot_read(tmp_path, cnn, calib_npz):
    import torch

    from edgekit_demo.zoo import digits_cnn

    scripted = tmp_path / "cnn.pt"
    torch.jit.script(digits_cnn().eval()).save(str(scripted))
    with pytest.raises(UsageError, match="TorchScript, which torch.export"):
        export(scripted, "executorch-fp32", tmp_path / "a", inputs=IMAGE)
    with pytest.raises(UsageError, match=r"at tests_models.py:\d+ in forward: `if x.sum\(\) > 0:`"):
        export("tests_models:data_dependent", "executorch-fp32", tmp_path / "b", calib=calib_npz, inputs=IMAGE)
    assert not (tmp_path / "b").exists() or not list((tmp_path / "b").iterdir())


@pytest.mark.slow  # 4 runs in 2 fresh processes each, every one importing ExecuTorch: 2 minutes on 2 cores
def test_benchmark_runs_executorch_files(pte):
    from edgekit.bench.harness import Settings, benchmark

    files = [pte["digits_cnn", t].artifact for t in EXECUTORCH]
    runs, error = benchmark(files, "local", Settings(batches=(1, 4), min_runs=20, min_time=0.05, processes=2))
    assert error is None and len(runs) == 4
    assert all(r["inputs"]["image"] == [1, 1, 8, 8] and len(r["samples_ms"]) >= 40 for r in runs)
    # the program fixes batch 1: a batch-4 request runs batch 1, and throughput counts what ran
    asked_4 = [r for r in runs if r["batch"] == 4]
    assert len(asked_4) == 2 and all(r["batch_fed"] == 1 for r in asked_4)
    assert all(r["throughput_per_s"] < 2000.0 / r["latency_ms"]["mean"] for r in asked_4)
    assert runs[0]["environment"]["runtime_versions"]["executorch"] == "1.5.1"


@pytest.mark.parametrize("model", ["data_dependent", "reads_its_layer"])
def test_a_model_fx_cannot_trace_is_static_int8_layer_by_layer(model, tmp_path, calib_npz):
    """Each layer between a quantize and a dequantize; a wrapped layer still answers for its weight."""
    result = export(f"tests_models:{model}", "pytorch-mobile-int8", tmp_path, calib=calib_npz, inputs=IMAGE)
    step = result.sidecar["route"][0]
    assert result.parity.passed and step["applied"] == "static", step
    assert "per layer" in step["quantization"]["method"] and "control flow" in step["quantization"]["fx_failed"]
    assert step["quantization"]["quantized_layers"] == 1 and step["quantization"]["calibration_samples"] > 0


def test_no_silent_dynamic_int8_when_calibration_data_was_given(capsys, tmp_path, calib_npz):
    """Neither static way works (FX cannot trace, no Linear/Conv for the per-layer way): with --calib that is
    an error naming both reasons and the way out; --allow-dynamic takes dynamic int8 knowingly."""
    args = ["export", "tests_models:lstm_branch", "-t", "pytorch-mobile-int8", "--input", zoo.DIGITS_INPUT]
    code, out = run_cli(capsys, *args, "--calib", calib_npz, "-o", tmp_path / "refused")
    assert code == 1 and "control flow" in out and "no Linear/Conv layer" in out and "--allow-dynamic" in out, out
    assert not (tmp_path / "refused").exists() or not list((tmp_path / "refused").iterdir())
    code, out = run_cli(capsys, *args, "--calib", calib_npz, "--allow-dynamic", "-o", tmp_path / "dynamic")
    assert code == 0, out
    sidecar = json.loads(next((tmp_path / "dynamic").glob("*.edgekit.json")).read_text())
    step = sidecar["route"][0]
    assert step["applied"] == "dynamic" and step["quantization"]["quantized_layer_types"] == ["LSTM"]
    assert "no Linear/Conv layer" in step["quantization"]["static_skipped"]
    code, out = run_cli(capsys, *args[:2], "-t", "pytorch-mobile", *args[4:], "--allow-dynamic", "-o", tmp_path / "f")
    assert code == 0, out  # an option of the runtime, harmless where nothing is quantized


def test_exported_program_sources(tmp_path, mlp, digits, calib_npz):
    import numpy as np
    import torch

    x_train, _, x_test, y_test = digits
    batch = {"input": {0: torch.export.Dim("batch")}}
    program = torch.export.export(mlp[0].eval(), (torch.from_numpy(x_train[:2]),), dynamic_shapes=batch)
    torch.export.save(program, str(tmp_path / "mlp.pt2"))
    np.savez(tmp_path / "input.npz", input=x_train[:64])
    result = export(tmp_path / "mlp.pt2", "executorch-int8", tmp_path / "pte", calib=tmp_path / "input.npz")
    assert result.parity.passed and result.sidecar["route"][0]["delegation"]["non_delegated_nodes"] == 0
    assert artifact_accuracy(result.artifact, x_test, y_test, input_name="input") > 0.85
    lite = export(tmp_path / "mlp.pt2", "pytorch-mobile", tmp_path / "ptl", calib=tmp_path / "input.npz")
    assert lite.parity.passed
    with pytest.raises(UsageError, match="ExportedProgram: a graph of aten ops"):
        export(tmp_path / "mlp.pt2", "pytorch-mobile-int8", tmp_path / "ptl8", calib=tmp_path / "input.npz")
    onnx_file = export(tmp_path / "mlp.pt2", "onnx-fp32", tmp_path / "onnx").artifact
    with pytest.raises(NoRouteError, match="From onnx, edgekit can produce"):
        export(onnx_file, "executorch-fp32", tmp_path / "none")
