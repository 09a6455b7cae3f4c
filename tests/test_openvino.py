"""OpenVINO targets: the digits CNN through all four (parity and accuracy), the IR pair as one artifact
(published together, hashed, checked), NNCF's ignored scope from the fallback, the device rules, the
benchmark_app parser on published output, and no telemetry."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import artifact_accuracy, run_cli

from edgekit_demo import zoo

TARGETS = ["openvino-fp32", "openvino-fp16", "openvino-int8", "openvino-int8-weights"]
FIXTURES = Path(__file__).parent / "fixtures"


def _export(cnn, calib_npz, target, out, **options):
    from edgekit.exporter import export
    from edgekit.spec import parse_input_spec

    _, weights = cnn
    inputs = (parse_input_spec(zoo.DIGITS_INPUT),)
    return export(
        "edgekit_demo.zoo:digits_cnn", target, out, calib=calib_npz, inputs=inputs, weights=weights, **options
    )


@pytest.fixture(scope="module")
def exported(cnn, calib_npz, tmp_path_factory):
    out = tmp_path_factory.mktemp("openvino")
    return {target: _export(cnn, calib_npz, target, out) for target in TARGETS}


@pytest.mark.parametrize("target", TARGETS)
def test_the_digits_cnn_goes_through_every_openvino_target(target, exported, cnn, digits):
    result = exported[target]
    _, _, x_test, y_test = digits
    model, _ = cnn
    import torch

    with torch.no_grad():
        source = float((model(torch.from_numpy(x_test)).argmax(-1).numpy() == y_test).mean())
    assert result.parity.passed and result.artifact.suffix == ".xml"
    assert artifact_accuracy(result.artifact, x_test, y_test) >= source - 0.015
    applied = {"openvino-fp32": "none", "openvino-fp16": "fp16", "openvino-int8": "static"}
    assert result.sidecar["quantization"]["applied"] == applied.get(target, "weight-only")


def test_the_ir_pair_is_one_artifact_with_both_hashes_in_the_sidecar(exported):
    xml = exported["openvino-int8"].artifact
    sidecar = json.loads(xml.with_name(xml.stem + ".edgekit.json").read_text())
    (companion,) = sidecar["companions"]
    weights = xml.with_suffix(".bin")
    assert companion["file"] == weights.name and companion["size_bytes"] == weights.stat().st_size
    assert companion["sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert sidecar["sha256"] == hashlib.sha256(xml.read_bytes()).hexdigest()
    # fp16 weights are half, int8 a quarter of the fp32 .bin; the graph (.xml) is the small part
    size = {t: exported[t].artifact.with_suffix(".bin").stat().st_size for t in TARGETS}
    assert size["openvino-fp16"] < 0.55 * size["openvino-fp32"]
    assert size["openvino-int8"] < 0.35 * size["openvino-fp32"]
    assert size["openvino-int8-weights"] < 0.35 * size["openvino-fp32"]


def test_int8_is_nncf_with_the_device_preset(exported):
    quantization = exported["openvino-int8"].sidecar["quantization"]
    assert quantization["method"] == "nncf.quantize" and quantization["quantized_ops"] >= 4  # 2 conv + 2 linear
    assert quantization["scheme_name"] in ("nncf_mixed", "nncf_mixed_overflow_fix")  # the x86 CPU rules
    assert quantization["engine"] == "CPU" and quantization["inference_precision"] == "f32"


def test_kept_layers_become_nncf_ignored_scope(cnn, calib_npz, tmp_path):
    """A linear layer found by its name; a convolution OpenVINO folded with its batch norm (and renamed) by
    its place among the convolutions."""
    from edgekit.fallback import FallbackOptions

    result = _export(cnn, calib_npz, "openvino-int8", tmp_path, fallback=FallbackOptions(keep_float=("3", "10")))
    quantization = result.sidecar["quantization"]
    conv, linear = quantization["kept_float_ops"]
    assert linear == "__module.10/aten::linear/MatMul" and not conv.startswith("__module.0")
    assert [f["layer"] for f in quantization["fallback"]["float_layers"]] == ["3", "10"]
    assert quantization["quantized_ops"] < 4 and result.parity.passed


def _fake_quantize_readers(xml: Path) -> set[str]:
    """The op types that read a FakeQuantize's output in an IR (a quantized weight's Convert chain skipped)."""
    import openvino as ov

    readers = set()
    for op in ov.Core().read_model(str(xml)).get_ops():
        if op.get_type_name() == "FakeQuantize" and op.input_value(0).get_node().get_type_name() != "Constant":
            readers |= {t.get_node().get_type_name() for t in op.output(0).get_target_inputs()}
    return readers


def test_the_non_layer_group_keeps_every_op_but_the_layers_float(exported, cnn, calib_npz, tmp_path):
    """EfficientNetB0 failed its gate with every layer float: NNCF also quantizes the inputs of pooling,
    activations and element-wise ops. The fallback's last group keeps those float; the layers stay int8."""
    from edgekit.backends.base import NON_LAYER_OPS
    from edgekit.fallback import FallbackOptions

    plain = _fake_quantize_readers(exported["openvino-int8"].artifact)
    assert plain - {"Convolution", "MatMul"}  # the default quantizes more than the layers' inputs
    result = _export(cnn, calib_npz, "openvino-int8", tmp_path, fallback=FallbackOptions(keep_float=(NON_LAYER_OPS,)))
    quantization = result.sidecar["quantization"]
    assert _fake_quantize_readers(result.artifact) <= {"Convolution", "MatMul"}
    assert quantization["float_non_layer_ops"] and quantization["quantized_ops"] >= 3 and result.parity.passed
    assert [f["layer"] for f in quantization["fallback"]["float_layers"]] == [NON_LAYER_OPS]


def test_an_onnx_source_and_its_node_names(exported, cnn, calib_npz, tmp_path, capsys):
    """ONNX -> IR keeps ONNX node names, which --keep-float takes."""
    onnx_file = _export(cnn, calib_npz, "onnx-fp32", tmp_path / "onnx").artifact
    import onnx

    gemm = next(n.name for n in onnx.load(str(onnx_file)).graph.node if n.op_type == "Gemm")
    code, out = run_cli(
        capsys, "export", onnx_file, "-t", "openvino-int8", "--calib", calib_npz, "-o", tmp_path, "--keep-float", gemm
    )
    assert code == 0, out
    sidecar = json.loads((tmp_path / f"{onnx_file.stem}-openvino-int8.edgekit.json").read_text())
    assert sidecar["route"][0]["step"] == "onnx->openvino"
    assert sidecar["quantization"]["kept_float_ops"] == [f"{gemm}/WithoutBiases"]


def test_republishing_replaces_both_files_and_a_pass_clears_an_earlier_rejection(cnn, calib_npz, tmp_path):
    from edgekit.fallback import FallbackOptions

    first = _export(cnn, calib_npz, "openvino-fp32", tmp_path).artifact
    (tmp_path / f"{first.stem}.rejected.xml").write_text("<net/>")  # what an earlier failed export leaves
    (tmp_path / f"{first.stem}.rejected.bin").write_bytes(b"\0")
    again = _export(cnn, calib_npz, "openvino-fp32", tmp_path, fallback=FallbackOptions(enabled=False)).artifact
    assert again == first and sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == [
        f"{first.stem}.bin",
        f"{first.stem}.edgekit.json",
        f"{first.stem}.xml",
    ]


def test_publish_moves_the_weights_before_the_graph(exported, tmp_path):
    """An interrupted publish leaves no .xml beside the wrong .bin: the old graph and sidecar go first, then
    the new weights, then the new graph, then the sidecar."""
    from edgekit.artifact import publish
    from edgekit.backends.openvino.ir import companions
    from edgekit.sidecar import parse_sidecar

    source = exported["openvino-fp32"].artifact
    final = tmp_path / "model.xml"
    for part, copy in ((source, final), (source.with_suffix(".bin"), final.with_suffix(".bin"))):
        shutil.copyfile(part, copy)  # an earlier export in place
    staged = tmp_path / "staged.xml"
    staged.with_suffix(".bin").write_bytes(b"new weights")  # the graph of the new export never got written
    sidecar = parse_sidecar(exported["openvino-fp32"].sidecar)
    with pytest.raises(FileNotFoundError):
        publish(staged, final, sidecar, companions)
    assert not final.exists() and not (tmp_path / "model.edgekit.json").exists()
    assert final.with_suffix(".bin").read_bytes() == b"new weights"


def test_an_xml_without_its_bin_is_refused_naming_the_file(exported, tmp_path, capsys, test_npz):
    xml = tmp_path / "lonely.xml"
    shutil.copyfile(exported["openvino-fp32"].artifact, xml)
    for command in (["evaluate", xml, "--data", test_npz], ["benchmark", xml]):
        code, out = run_cli(capsys, *command)
        assert code == 2 and "lonely.bin is missing" in out and "lonely.xml, lonely.bin" in out, out


def test_an_op_openvino_cannot_convert_is_named_with_its_node(tmp_path, capsys):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Opaque", ["x"], ["y"], domain="custom.x", name="mystery")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])],
    )
    source = tmp_path / "opaque.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("custom.x", 1)]),
              str(source))  # fmt: skip
    code, out = run_cli(capsys, "export", source, "-t", "openvino-fp32", "-o", tmp_path / "out")
    assert code == 2 and "custom.x.Opaque (node mystery)" in out, out
    assert not (tmp_path / "out").exists()  # nothing written: the folder the command created goes again


def test_the_npu_profile_refuses_fp32_and_names_what_it_runs(cnn, calib_npz, tmp_path, capsys):
    _, weights = cnn
    code, out = run_cli(
        capsys, "export", "edgekit_demo.zoo:digits_cnn", "--weights", weights, "--input", zoo.DIGITS_INPUT,
        "-t", "openvino-fp32", "--device", "intel-npu", "-o", tmp_path,
    )  # fmt: skip
    assert code == 2 and "runs only fp16, static, weight-only openvino files" in out, out


def test_an_ir_for_an_absent_npu_is_checked_on_this_cpu(cnn, calib_npz, tmp_path):
    """The IR names its device (rt_info); parity runs on this machine's CPU where that device is absent."""
    import openvino as ov

    result = _export(cnn, calib_npz, "openvino-int8", tmp_path, device="intel-npu")
    model = ov.Core().read_model(str(result.artifact))
    assert model.get_rt_info(["edgekit", "device"]).astype(str) == "NPU"
    assert model.get_rt_info(["edgekit", "inference_precision"]).astype(str) == "f16"
    assert result.sidecar["quantization"]["preset"] == "performance" and result.parity.passed


def test_the_device_rules_by_isa(catalog_devices=None):
    from edgekit.catalog import get_device

    assert get_device("x86-avx2").runtimes["openvino"].scheme == "nncf_mixed_overflow_fix"  # no VNNI: saturation
    assert get_device("x86-avx512").runtimes["openvino"].scheme == "nncf_mixed_overflow_fix"
    assert get_device("x86-vnni").runtimes["openvino"].scheme == "nncf_mixed"
    assert get_device("x86-amx").runtimes["openvino"].scheme == "nncf_mixed"
    assert get_device("intel-igpu").runtimes["openvino"].engine == "GPU"


def test_benchmark_app_output_parses_into_the_run_fields():
    from edgekit.backends.openvino.benchmark_app import parse

    run = parse((FIXTURES / "openvino_benchmark_app.txt").read_text())
    assert run["latency_ms"]["p50"] == 8.92 and run["latency_ms"]["mean"] == 8.92
    assert (run["latency_ms"]["min"], run["latency_ms"]["max"], run["latency_ms"]["n"]) == (7.66, 14.16, 13316)
    assert run["throughput_qps"] == 110.96 and run["first_inference_ms"] == 17.45
    assert run["init_ms"] == pytest.approx(25.60 + 1067.96)
    assert run["execution_devices"] == ["CPU"] and run["openvino_version"].startswith("2024.4.0")


def test_benchmark_app_microseconds_are_read_as_such():
    """OpenVINO 2026 prints sub-millisecond latencies in us (this repository's CNN, benchmark_app on this CPU)."""
    from edgekit.backends.openvino.benchmark_app import parse

    run = parse((FIXTURES / "openvino_benchmark_app_us.txt").read_text())
    assert run["latency_ms"]["p50"] == pytest.approx(0.01228) and run["latency_ms"]["n"] == 20
    assert run["first_inference_ms"] == pytest.approx(1.04) and run["init_ms"] == pytest.approx(4.24 + 25.68)
    assert run["openvino_version"].startswith("2026.4.1")


def test_benchmark_app_without_a_report_is_an_error():
    from edgekit.backends.openvino.benchmark_app import parse
    from edgekit.errors import EdgekitError

    with pytest.raises(EdgekitError, match="no statistics report"):
        parse("[ ERROR ] Exception from src/inference/src/cpp/core.cpp:109:\nNetwork not found\n")


def test_benchmark_app_runs_the_ir_at_its_device_and_fixed_shapes(exported):
    from edgekit.backends.openvino.benchmark_app import command, extra_args

    xml = exported["openvino-int8"].artifact
    argv = command("benchmark_app", str(xml), 1, 50, 5) + extra_args(xml)
    assert argv[argv.index("-d") + 1] == "CPU" and argv[argv.index("-infer_precision") + 1] == "f32"
    assert argv[argv.index("-shape") + 1] == "image[1,1,8,8]" and argv[argv.index("-niter") + 1] == "50"


def test_the_ir_benchmarks_in_the_python_worker(exported):
    from edgekit.bench.harness import Settings, benchmark

    files = [exported[t].artifact for t in ("openvino-fp32", "openvino-int8")]
    runs, error = benchmark(files, "local", Settings(min_runs=20, min_time=0.05, warmup=2, processes=1))
    assert error is None
    assert [r["environment"]["runtime_versions"]["openvino_device"] for r in runs] == ["CPU", "CPU"]
    bins = [f.with_suffix(".bin").stat().st_size + f.stat().st_size for f in files]
    assert [r["size_bytes"] for r in runs] == bins and all(r["latency_ms"]["p50"] > 0 for r in runs)


def test_no_telemetry_module_loads_with_the_stack():
    """NNCF and OpenVINO's converter send usage telemetry unless blocked; edgekit blocks it."""
    import subprocess
    import sys

    probe = (
        "from edgekit.backends.openvino.stack import import_stack; import_stack('nncf', 't'); "
        "import openvino.tools.ovc.telemetry_utils as t, nncf.telemetry.wrapper as n, sys; "
        "print(t.tm.__name__, isinstance(n.telemetry, n.NNCFTelemetryStub), "
        "sys.modules.get('openvino_telemetry', 'absent'))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    assert out.stdout.split() == ["openvino.tools.ovc.telemetry_stub", "True", "None"], out.stderr[-500:]


def test_outputs_match_the_source_on_real_digits(exported, cnn, digits):
    import torch

    from edgekit.dispatch import open_runner

    _, _, x_test, _ = digits
    model, _ = cnn
    with torch.no_grad():
        expected = model(torch.from_numpy(x_test[:64])).numpy()
    with open_runner(exported["openvino-fp32"].artifact) as runner:
        (got,) = runner.infer({"image": x_test[:64]}).values()
    np.testing.assert_allclose(got, expected, atol=1e-4)


@pytest.mark.ssh
def test_the_ir_pair_benchmarks_over_ssh_with_the_worker_and_benchmark_app(sshd, exported, tmp_path):
    """Over ssh the .bin travels with the .xml; benchmark_app (installed with openvino) runs as the native tool
    and its report becomes the same JSON contract."""
    import sys

    from edgekit.bench.harness import Settings, benchmark
    from edgekit.errors import UsageError

    xml = exported["openvino-int8"].artifact
    ssh = dict(identity=str(sshd.key), python=sys.executable, options=sshd.ssh_options)
    quick = Settings(min_runs=20, min_time=0.05, warmup=2, processes=1)
    runs, error = benchmark([xml], sshd.url, quick, **ssh)
    assert error is None and runs[0]["latency_ms"]["p50"] > 0 and len(runs[0]["samples_ms"]) >= 20
    with pytest.raises(UsageError, match="no 'benchmark_app_nowhere' on its PATH"):
        benchmark([xml], sshd.url, quick, tool="benchmark_app_nowhere", **ssh)
    tool = str(Path(sys.executable).with_name("benchmark_app"))  # pip's benchmark_app script, pushed and run
    runs, error = benchmark([xml], sshd.url, quick, tool=tool, **ssh)
    assert error is None, error
    run = runs[0]
    assert run["environment"]["tool"] == "benchmark_app"
    assert 0 < run["latency_ms"]["min"] <= run["latency_ms"]["p50"] <= run["latency_ms"]["max"]


def test_a_savedmodel_converts_through_its_traced_function(tmp_path):
    """Keras/TensorFlow sources go keras -> openvino: the loader's traced tf.function, output names kept."""
    import tensorflow as tf

    from edgekit.exporter import export

    class Scorer(tf.Module):
        def __init__(self) -> None:
            self.w = tf.Variable(tf.random.stateless_normal((64, 10), seed=(1, 2)))

        @tf.function(input_signature=[tf.TensorSpec([None, 64], tf.float32, name="x")])
        def __call__(self, x):
            return {"logits": tf.nn.relu(x @ self.w)}

    module = Scorer()
    tf.saved_model.save(module, str(tmp_path / "sm"), signatures=module.__call__)
    calib = tmp_path / "calib.npz"
    np.savez(calib, x=np.random.default_rng(0).random((64, 64), dtype=np.float32))
    result = export(tmp_path / "sm", "openvino-int8", tmp_path / "out", calib=calib)
    assert result.parity.passed and result.sidecar["route"][0]["step"] == "keras->openvino"
    assert [o["name"] for o in result.sidecar["tensors"]["outputs"]] == ["logits"]


def test_an_openvino_error_naming_a_node_says_which_ops_surround_it():
    """OpenVINO refuses NNCF's per-channel FakeQuantize on EfficientNet naming only `FakeQuantize_436192`: the
    error also says what the node reads and what reads it, which names the layer."""
    import openvino as ov
    import openvino.opset13 as ops

    from edgekit.backends.openvino.runner import named_node_context

    x = ops.parameter([1, 4], np.float32, name="x")
    lo, hi = ops.constant(np.array([0.0], np.float32)), ops.constant(np.array([1.0], np.float32))
    fq = ops.fake_quantize(x, lo, hi, lo, hi, 256, name="fq")
    model = ov.Model([ops.multiply(fq, ops.constant(np.ones((1, 4), np.float32)), name="se_excite/Mul")], [x])
    said = named_node_context(model, "FakeQuantize node with name 'fq' doesn't support non per-tensor quantization")
    assert said == "; fq is a FakeQuantize reading Parameter 'x' read by Multiply 'se_excite/Mul'"
    assert named_node_context(model, "a message that names no node") == ""
    assert named_node_context(model, "node with name 'gone' failed") == ""


def test_a_keras_cnn_reaches_openvino_without_a_transpose_around_every_layer(tmp_path):
    """From the loader's list of outputs the TensorFlow frontend left NHWC<->NCHW Transposes around every layer
    (46 in EfficientNetB0), and NNCF moved per-channel activation quantizers across them onto the wrong axis:
    OpenVINO refused the int8 file. The frontend sorts outputs by name (output_10 before output_2: parity failed and
    the ONNX route took over); the IR keeps the model's order."""
    import keras
    import openvino as ov

    from edgekit.exporter import export

    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 3), name="image")
    h = keras.layers.Conv2D(8, 3, activation="swish")(inp)
    h = keras.layers.DepthwiseConv2D(3, activation="swish")(h)
    h = keras.layers.Conv2D(8, 1, activation="swish")(h)
    pooled = keras.layers.GlobalAveragePooling2D()(h)
    model = keras.Model(inp, [keras.layers.Dense(k + 1)(pooled) for k in range(11)])  # output_10 sorts before _2
    model.save(tmp_path / "heads.keras")
    result = export(tmp_path / "heads.keras", "openvino-fp32", tmp_path / "out")
    assert result.parity.passed and result.sidecar["route"][0]["step"] == "keras->openvino"  # not the ONNX detour
    ir = ov.Core().read_model(str(result.artifact))
    assert sum(op.get_type_name() == "Transpose" for op in ir.get_ops()) <= 1
    assert [port.get_partial_shape()[1].get_length() for port in ir.outputs] == list(range(1, 12))
    assert [port.get_any_name() for port in ir.outputs] == [o["name"] for o in result.sidecar["tensors"]["outputs"]]
