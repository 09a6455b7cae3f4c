"""TensorRT: stage 1 (the TensorRT-ready ONNX) for real on this CPU machine, trtexec's command lines and real
logs, the remote engine build over a real sshd on loopback, and the GPU tests that run where one is present.

Stage 1 runs in ONNX Runtime here. Stage 2 needs TensorRT and an NVIDIA GPU: the remote build tests give
sshd a stand-in trtexec (a script printing real trtexec output) only because the real one needs a GPU; the
`gpu` tests build and run real engines and are skipped here with the reason.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from helpers import artifact_accuracy, run_cli
from onnx import TensorProto, helper, numpy_helper

from edgekit.backends.tensorrt import trtexec
from edgekit.backends.tensorrt.engine import (
    EngineOptions,
    MissingOnDeviceError,
    build_engine,
    layer_precisions,
    local_build_missing,
)
from edgekit.backends.tensorrt.profiles import Profile, derive, parse_profile
from edgekit.backends.tensorrt.runner import check_compatible
from edgekit.errors import ConversionError, ModelLoadError, UnsupportedOpError, UsageError
from edgekit.exporter import export
from edgekit.sidecar import read_sidecar
from edgekit.spec import TensorSpec, parse_input_spec
from edgekit_demo import zoo
from edgekit_demo.zoo_text import TINY_BERT_INPUTS

FIXTURES = Path(__file__).parent / "fixtures" / "trtexec"
IMAGE = (parse_input_spec(zoo.DIGITS_INPUT),)
TINY_BERT = tuple(parse_input_spec(s) for s in TINY_BERT_INPUTS)
NO_ENGINE_HERE = local_build_missing()
gpu = pytest.mark.skipif(bool(NO_ENGINE_HERE), reason=f"needs TensorRT and a GPU: {'; '.join(NO_ENGINE_HERE)}")


def fixture(name: str) -> str:
    return "".join(ln for ln in (FIXTURES / name).read_text().splitlines(True) if not ln.startswith("# "))


@pytest.fixture(scope="module")
def stage1(tmp_path_factory, cnn, transformer, calib_npz):
    """The digits CNN and the tiny transformer exported to every TensorRT target once."""
    out = tmp_path_factory.mktemp("tensorrt")
    results = {}
    for name, (_model, weights) in {"digits_cnn": cnn, "tiny_transformer": transformer}.items():
        for target in ("tensorrt-fp32", "tensorrt-fp16", "tensorrt-int8"):
            results[name, target] = export(
                f"edgekit_demo.zoo:{name}", target, out / name, calib=calib_npz, weights=weights, inputs=IMAGE
            )
    return results


@pytest.mark.parametrize("model", ["digits_cnn", "tiny_transformer"])
@pytest.mark.parametrize("target", ["tensorrt-fp32", "tensorrt-fp16", "tensorrt-int8"])
def test_stage1_onnx_passes_parity_and_keeps_accuracy_in_onnx_runtime(stage1, digits, model, target):
    _, _, x_test, y_test = digits
    result = stage1[model, target]
    assert result.artifact.suffix == ".onnx" and result.parity.passed
    assert result.sidecar["runtime"] == "tensorrt" and result.sidecar["device"]["name"] == "nvidia-gpu"
    source_acc = artifact_accuracy(stage1[model, "tensorrt-fp32"].artifact, x_test, y_test)
    assert source_acc > 0.85
    assert artifact_accuracy(result.artifact, x_test, y_test) >= source_acc - 0.015
    if NO_ENGINE_HERE:  # stage 2 is skipped with what is missing, and the ONNX still published
        assert result.engine is None
        assert any("engine was not built" in w and "build-engine" in w for w in result.warnings)


def test_int8_files_run_here_with_tensorrts_exact_int8_arithmetic(stage1):
    """The Q/DQ pairs of a TensorRT-ready file stand for exact int8 arithmetic; ONNX Runtime would fuse them
    into its CPU int8 kernels, whose s8s8 form saturates on CPUs without VNNI (the tiny transformer's parity fell
    to cosine 0.85 on an AVX2 EPYC, every layer kept float or not). The file says so, and parity, evaluate and
    the per-layer fallback run it with the pairs unfused; fp32 files are run as they are."""
    from edgekit.backends.onnxruntime.runner import EXACT_QDQ
    from edgekit.dispatch import open_runner

    for target, exact in (("tensorrt-int8", "1"), ("tensorrt-fp32", "")):
        path = stage1["tiny_transformer", target].artifact
        props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
        assert props.get(EXACT_QDQ, "") == exact
        with open_runner(path) as runner:
            options = runner.session.get_session_options()
            try:
                entry = options.get_session_config_entry("session.disable_quant_qdq")
            except RuntimeError:  # not set
                entry = ""
            assert entry == exact


@pytest.mark.parametrize("model", ["digits_cnn", "tiny_transformer"])
def test_int8_qdq_is_symmetric_per_channel_and_only_before_weighted_layers(stage1, model):
    graph = onnx.load(str(stage1[model, "tensorrt-int8"].artifact)).graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    consumers: dict[str, list[str]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node.op_type)
    dq = [n for n in graph.node if n.op_type == "DequantizeLinear"]
    q = [n for n in graph.node if n.op_type == "QuantizeLinear"]
    assert q and dq
    for node in q + dq:
        zero = inits[node.input[2]]
        assert zero.dtype == np.int8 and not zero.any(), f"{node.name}: TensorRT needs zero points of 0"
    weights = [n for n in dq if n.input[0] in inits]
    assert weights, "weights are stored int8 behind a DequantizeLinear"
    for node in weights:
        scale, w = inits[node.input[1]], inits[node.input[0]]
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        assert scale.ndim == 1 and scale.shape[0] == w.shape[axis] > 1, f"{node.name}: per-channel scales"
    for node in q:  # activations are quantized only where a weighted layer reads them (a residual may share it)
        (dq_out,) = [n.output[0] for n in dq if n.input[0] == node.output[0]]
        assert set(consumers[dq_out]) & {"Conv", "Gemm", "MatMul", "ConvTranspose"}, node.name
    weighted_outputs = {o for n in graph.node if n.op_type in ("Conv", "Gemm") for o in n.output}
    assert not any(n.input[0] in weighted_outputs for n in q), "no Q/DQ on the outputs of weighted layers"
    quant = stage1[model, "tensorrt-int8"].sidecar["quantization"]
    assert quant["builder_flags"] == ["INT8", "FP16"] and quant["activations"] == "int8 symmetric=True"
    assert "modelopt" in quant["why_not_modelopt"]


def test_stage1_records_profiles_opset_and_folding(stage1):
    step = next(s for s in stage1["digits_cnn", "tensorrt-fp32"].sidecar["route"] if s["step"] == "onnx->tensorrt")
    assert step["profiles"] == {"image": {"min": [1, 1, 8, 8], "opt": [1, 1, 8, 8], "max": [16, 1, 8, 8]}}
    assert step["opset"] <= 20 and step["parser"].startswith("TensorRT 10")
    assert step["nodes_after"] <= step["nodes_before"]
    fp16 = onnx.load(str(stage1["digits_cnn", "tensorrt-fp16"].artifact)).graph
    assert any(i.data_type == TensorProto.FLOAT16 for i in fp16.initializer), "fp16 weights in the ONNX"
    assert fp16.input[0].type.tensor_type.elem_type == TensorProto.FLOAT, "float32 I/O"


def test_profiles_derived_given_and_refused():
    specs = (TensorSpec("input_ids", "int64", ("batch", "seq")), TensorSpec("mask", "int64", ("batch", 32)))
    derived = {p.name: p for p in derive(specs, None)}
    assert derived["input_ids"] == Profile("input_ids", (1, 64), (1, 64), (16, 64))
    assert derived["mask"] == Profile("mask", (1, 32), (1, 32), (16, 32))
    given = parse_profile("input_ids:1x16,4x64,8x128")
    assert {p.name: p for p in derive(specs, None, (given,))}["input_ids"] == given
    for bad, message in [
        ("input_ids:8x64,4x64,1x64", "min <= opt <= max"),
        ("mask:1x16,1x16,1x16", "fixes it at 32"),
        ("input_ids:1x64,1x64", "NAME:MIN,OPT,MAX"),
        ("input_ids:1x64x2,1x64x2,1x64x2", "rank 3"),
        ("labels:1,1,1", "names no input"),
    ]:
        with pytest.raises(UsageError, match=message):
            derive(specs, None, (parse_profile(bad),))


def test_cli_bad_profile_and_missing_calibration_exit_2_with_nothing_written(cnn, calib_npz, tmp_path, capsys):
    out = tmp_path / "out"
    base = ["export", "edgekit_demo.zoo:digits_cnn", "--weights", cnn[1], "--input", zoo.DIGITS_INPUT, "-o", out]
    code, text = run_cli(capsys, *base, "-t", "tensorrt-fp32", "--profile", "image:4x1x8x8,2x1x8x8,1x1x8x8")
    assert code == 2 and "min <= opt <= max" in text
    code, text = run_cli(capsys, *base, "-t", "tensorrt-int8")
    assert code == 2 and "calibration" in text
    # TensorRT's own option on another runtime's target: refused, naming whose option it is
    code, text = run_cli(capsys, *base, "-t", "onnx-fp32", "--profile", "image:1x1x8x8,1x1x8x8,1x1x8x8")
    assert code == 2 and "onnxruntime, which has no option profiles" in text and "tensorrt targets" in text
    code, text = run_cli(capsys, "build-engine", "model-tensorrt-fp32.onnx", "--workspace-mib", "0")
    assert code == 2 and "workspace_mib: Input should be greater than or equal to 1" in text
    assert not list(out.glob("*.onnx")) and not list(out.glob("*.json"))


def _onnx_with(op: str, tmp_path: Path, domain: str = "") -> Path:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n"])
    relu = helper.make_node("Relu", ["x"], ["r"], name="relu_0")
    odd = helper.make_node(op, ["r"], ["y"], name=f"{op.lower()}_1", domain=domain)
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    model = helper.make_model(helper.make_graph([relu, odd], "g", [x], [y]), opset_imports=opsets)
    path = tmp_path / f"{op}.onnx"
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize(("op", "domain"), [("Unique", ""), ("FastGelu", "com.microsoft")])
def test_op_tensorrt_cannot_parse_is_named_with_its_node(op, domain, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(UnsupportedOpError, match=rf"{op} \(node {op.lower()}_1") as info:
        export(_onnx_with(op, tmp_path, domain), "tensorrt-fp32", out)
    assert info.value.exit_code == 2
    assert not [p for p in out.iterdir() if not p.name.startswith(".")], "nothing half-written"


def test_older_tensorrt_gets_its_opset_and_its_op_list(cnn, tiny_bert_onnx, tmp_path):
    """jetson-xavier's TensorRT 8.5 parses opsets up to 17 and has no LayerNormalization importer."""
    result = export(
        "edgekit_demo.zoo:digits_cnn", "tensorrt-fp32", tmp_path, weights=cnn[1], inputs=IMAGE, device="jetson-xavier"
    )
    assert onnx.load(str(result.artifact)).opset_import[0].version == 17
    bert = ("edgekit_demo.zoo_text:tiny_bert_sentiment", "tensorrt-fp32", tmp_path / "bert")
    with pytest.raises(UnsupportedOpError, match=r"TensorRT 8.5.*LayerNormalization \(node"):
        export(*bert, inputs=TINY_BERT, device="jetson-xavier")
    with pytest.raises(ConversionError, match="from ONNX opset 20 to 17.*Gelu"):  # an opset-20 file: named why
        export(tiny_bert_onnx, "tensorrt-fp32", tmp_path / "bert-onnx", device="jetson-xavier")


@pytest.fixture(scope="module")
def tiny_bert_onnx(tmp_path_factory):
    out = tmp_path_factory.mktemp("bert")
    source = "edgekit_demo.zoo_text:tiny_bert_sentiment"
    return export(source, "onnx-fp32", out, inputs=TINY_BERT, options={"fuse": False}).artifact


def test_trtexec_performance_summaries_parse_into_the_run_fields():
    """Fixtures: real trtexec output from NVIDIA/TensorRT #4177 (10.x) and WongKinYiu/yolov7 #329 (8.x)."""
    new = trtexec.parse_performance(fixture("perf_summary_trt10.txt"))
    assert new["latency_ms"] == {
        "min": 5.38672,
        "max": 13.3664,
        "mean": 7.60628,
        "p50": 7.16092,
        "p90": 10.2996,
        "p95": 10.8698,
        "p99": 12.9675,
        "std": None,
    }
    assert new["gpu_compute_ms"]["p50"] == 7.14139 and new["enqueue_ms"]["p99"] == 14.1848
    assert new["throughput_qps"] == 130.298 and new["tool"] == "trtexec"
    old = trtexec.parse_performance(fixture("perf_summary_trt8.txt"))
    assert old["latency_ms"]["p99"] == 1.55853 and old["latency_ms"]["p90"] is None
    assert old["h2d_ms"]["mean"] == 0.0
    with pytest.raises(Exception, match="no performance summary"):
        trtexec.parse_performance(fixture("parse_failure.txt"))


def test_trtexec_device_version_and_parser_errors_are_read():
    """Fixtures: OE4T/meta-tegra #2243 (Jetson Orin), NVIDIA/TensorRT #4587 (banner), a parse failure from
    RichardoMrMu/yolov5-deepsort-tensorrt #20."""
    assert trtexec.parse_device(fixture("device_info_orin.txt")) == {
        "tensorrt_version": "10.16.2",
        "gpu": "Orin",
        "compute_capability": "8.7",
    }
    assert trtexec.parse_device(fixture("banner_trt10_13.txt")) == {"tensorrt_version": "10.13.3"}
    errors = trtexec.parse_parser_errors(fixture("parse_failure.txt"))
    assert errors[0] == "While parsing node number 0 [Conv]:" and "tensors.count(input_name)" in errors[-1]


def test_trtexec_build_command_carries_precision_profiles_cache_and_report():
    profiles = [Profile("input_ids", (1, 64), (1, 64), (16, 64)), Profile("mask", (1, 64), (4, 64), (16, 64))]
    argv = trtexec.build_command("trtexec", "m.onnx", "m.plan", ("INT8", "FP16"), profiles, "c.cache", "l.json", 2048)
    assert argv[:3] == ["trtexec", "--onnx=m.onnx", "--saveEngine=m.plan"]
    assert {"--int8", "--fp16", "--timingCacheFile=c.cache", "--exportLayerInfo=l.json", "--skipInference"} <= set(argv)
    assert "--memPoolSize=workspace:2048M" in argv and "--profilingVerbosity=detailed" in argv
    assert "--minShapes=input_ids:1x64,mask:1x64" in argv
    assert "--optShapes=input_ids:1x64,mask:4x64" in argv
    assert "--maxShapes=input_ids:16x64,mask:16x64" in argv


def test_layer_precisions_from_real_layer_reports():
    """Fixture: layers of real --exportLayerInfo output from NVIDIA/TensorRT #4020 and #3737."""
    report = layer_precisions(json.loads((FIXTURES / "layer_info_int8.json").read_text()))
    assert report["counts"] == {"int8": 2}
    assert report["layers"][1]["type"] == "CaskConvolution"
    names_only = layer_precisions({"Layers": ["Conv__25 + Relu", "MaxPool2d"], "Bindings": ["x:0"]})
    assert names_only["counts"] == {"unknown": 2}


def test_engine_compatibility_names_both_versions(stage1, tmp_path):
    onnx_file = stage1["digits_cnn", "tensorrt-fp16"].artifact
    data = json.loads(onnx_file.with_name(onnx_file.stem + ".edgekit.json").read_text())
    engine = tmp_path / "cnn-sm87.plan"
    engine.write_bytes(b"engine")
    data["engine"] = {"tensorrt_version": "10.3.0", "compute_capability": "8.7", "gpu": "Orin"}
    (tmp_path / "cnn-sm87.edgekit.json").write_text(json.dumps(data))
    check_compatible(engine, "10.3.0.26", "8.7")  # same release and GPU: fine
    with pytest.raises(ModelLoadError, match=r"TensorRT 10.3.0 for sm_87 \(Orin\).*TensorRT 10.8.0 and sm_90"):
        check_compatible(engine, "10.8.0", "9.0")


def test_targets_say_stage_1_works_and_what_stage_2_lacks(capsys):
    code, text = run_cli(capsys, "targets", "--json")
    assert code == 0
    rows = {r["name"]: r for r in json.loads(text)}
    for name in ("tensorrt-fp32", "tensorrt-fp16", "tensorrt-int8"):
        row = rows[name]
        assert row["exports_here"] and row["runs_here"] and row["file"] == ".onnx" and row["engine"] == ".plan"
        if NO_ENGINE_HERE:
            assert row["engine_here"] is False
            assert "tensorrt" in row["engine_why_not"] and "NVIDIA GPU" in row["engine_why_not"]


def test_local_engine_build_without_tensorrt_says_what_is_missing(stage1):
    if not NO_ENGINE_HERE:
        pytest.skip("this machine builds engines")
    with pytest.raises(MissingOnDeviceError, match="tensorrt") as info:
        build_engine(stage1["digits_cnn", "tensorrt-fp32"].artifact)
    assert info.value.exit_code == 2


STAND_IN = '''#!{python}
"""Stand-in trtexec for the loopback ssh tests: the real one needs an NVIDIA GPU. It prints real trtexec
output (the fixtures) and writes the files a build writes; it records its command line for the test."""
import json, os, sys
here = "{folder}"  # the fixtures, wherever the script was copied to
args = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--") and "=" in a)
with open(os.path.join(here, "argv.json"), "a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\\n")
print("&&&& RUNNING TensorRT.trtexec [TensorRT v100300] # trtexec " + " ".join(sys.argv[1:]))
if "--help" in sys.argv:
    sys.exit(0)
if os.path.exists(os.path.join(here, "fail_parse")):
    print(open(os.path.join(here, "parse_failure.txt")).read())
    sys.exit(1)
print(open(os.path.join(here, "device_info_orin.txt")).read().replace("10.16.2", "10.3.0"))
if "loadEngine" in args:
    print(open(os.path.join(here, "perf_summary_trt10.txt")).read())
    sys.exit(0)
open(args["saveEngine"], "wb").write(b"stand-in engine of " + open(args["onnx"], "rb").read()[:64])
open(args["exportLayerInfo"], "w").write(open(os.path.join(here, "layer_info_int8.json")).read())
open(args["timingCacheFile"], "wb").write(b"timing cache")
'''


@pytest.fixture
def stand_in_trtexec(tmp_path):
    folder = tmp_path / "nvidia-host"
    folder.mkdir()
    for name in ("device_info_orin.txt", "perf_summary_trt10.txt", "parse_failure.txt", "layer_info_int8.json"):
        text = (FIXTURES / name).read_text()
        (folder / name).write_text(fixture(name) if name.endswith(".txt") else text)
    tool = folder / "trtexec"
    tool.write_text(STAND_IN.format(python=sys.executable, folder=folder))
    tool.chmod(0o755)
    return tool


def _copied(artifact: Path, folder: Path) -> Path:
    """A stage-1 ONNX and its sidecar copied to `folder` (each build test writes beside its own copy)."""
    for path in (artifact, artifact.with_name(artifact.stem + ".edgekit.json")):
        (folder / path.name).write_bytes(path.read_bytes())
    return folder / artifact.name


def _ssh(sshd) -> dict:
    return {"identity": str(sshd.key), "options": sshd.ssh_options}


@pytest.mark.ssh
def test_remote_engine_build_over_ssh_brings_back_engine_log_and_layer_report(sshd, stage1, stand_in_trtexec, tmp_path):
    onnx_file = _copied(stage1["digits_cnn", "tensorrt-int8"].artifact, tmp_path)
    options = EngineOptions(build_on=sshd.url, trtexec=str(stand_in_trtexec), transport=_ssh(sshd))
    engine = build_engine(onnx_file, options)
    assert engine.name == f"{onnx_file.stem}-sm87.plan" and engine.read_bytes().startswith(b"stand-in engine of")
    facts = read_sidecar(engine).engine
    assert facts["tensorrt_version"] == "10.3.0" and facts["gpu"] == "Orin" and facts["compute_capability"] == "8.7"
    assert facts["builder_flags_set"] == ["INT8", "FP16"] and facts["built_on"] == sshd.url
    assert facts["profiles"]["image"]["max"] == [16, 1, 8, 8]
    assert facts["layer_precisions"]["counts"] == {"int8": 2}
    assert (tmp_path / f"{onnx_file.stem}-sm87.build.log").read_text().count("Compute Capability: 8.7") == 1
    assert (tmp_path / f"{onnx_file.stem}.timing.cache").read_bytes() == b"timing cache"
    build_argv = [json.loads(ln) for ln in (stand_in_trtexec.parent / "argv.json").read_text().splitlines()][-1]
    assert "--int8" in build_argv and "--maxShapes=image:16x1x8x8" in build_argv
    # the engine then benchmarks over ssh with trtexec, its report in the JSON contract
    from edgekit.bench.harness import Settings, benchmark

    runs, error = benchmark([engine], sshd.url, Settings(processes=1), tool=str(stand_in_trtexec), **_ssh(sshd))
    assert error is None and runs[0]["latency_ms"]["p50"] == 7.16092
    assert runs[0]["processes"][0]["gpu_compute_ms"]["p99"] == 12.9485
    bench_argv = [json.loads(ln) for ln in (stand_in_trtexec.parent / "argv.json").read_text().splitlines()][-1]
    assert any(a.startswith("--loadEngine=") for a in bench_argv) and "--shapes=image:1x1x8x8" in bench_argv
    # without --tool, the host's own trtexec is looked for (this loopback host has none)
    with pytest.raises(MissingOnDeviceError, match="looked for trtexec and /usr/src/tensorrt/bin/trtexec"):
        benchmark([engine], sshd.url, Settings(processes=1), **_ssh(sshd))


@pytest.mark.ssh
def test_remote_build_failures_name_what_was_looked_for_and_write_nothing(sshd, stage1, stand_in_trtexec, tmp_path):
    onnx_file = _copied(stage1["digits_cnn", "tensorrt-fp32"].artifact, tmp_path)
    missing = EngineOptions(build_on=sshd.url, trtexec="/nonexistent/trtexec", transport=_ssh(sshd))
    with pytest.raises(MissingOnDeviceError, match="no trtexec: looked for /nonexistent/trtexec") as info:
        build_engine(onnx_file, missing)
    assert info.value.exit_code == 2
    (stand_in_trtexec.parent / "fail_parse").write_text("")
    failing = EngineOptions(build_on=sshd.url, trtexec=str(stand_in_trtexec), transport=_ssh(sshd))
    with pytest.raises(UnsupportedOpError, match=r"While parsing node number 0 \[Conv\]"):
        build_engine(onnx_file, failing)
    assert not list(tmp_path.glob("*.plan")) and not list(tmp_path.glob("*.build.log"))


@gpu
@pytest.mark.gpu
@pytest.mark.tensorrt
@pytest.mark.parametrize("target", ["tensorrt-fp32", "tensorrt-fp16", "tensorrt-int8"])
def test_engine_built_here_passes_parity_and_benchmarks(stage1, digits, target):
    """Runs unchanged on a machine with an NVIDIA GPU, tensorrt and cuda-python."""
    from edgekit.bench.harness import Settings, benchmark

    _, _, x_test, y_test = digits
    engine = build_engine(stage1["digits_cnn", target].artifact)
    facts = read_sidecar(engine).engine
    assert facts["tensorrt_version"] and facts["compute_capability"] and facts["layer_precisions"]["layers"]
    assert facts["parity_vs_onnx"]["passed"]
    onnx_acc = artifact_accuracy(stage1["digits_cnn", "tensorrt-fp32"].artifact, x_test, y_test)
    assert artifact_accuracy(engine, x_test, y_test) >= onnx_acc - 0.015
    runs, error = benchmark([engine], "local", Settings(min_runs=20, min_time=0.05, processes=2))
    assert error is None and runs[0]["latency_ms"]["p50"] > 0


def _engine_beside(onnx_file: Path, name: str = "model-sm90.plan") -> Path:
    """An engine file with the sidecar build-engine writes (the ONNX named and hashed); its bytes are not read
    before the rebuild, which needs a GPU."""

    from edgekit.checksum import sha256_path
    from edgekit.sidecar import sidecar_path

    engine = onnx_file.with_name(name)
    engine.write_bytes(b"a serialized engine")
    record = read_sidecar(onnx_file).to_json()
    record.update(file=engine.name, engine={"from_onnx": {"file": onnx_file.name, "sha256": sha256_path(onnx_file)}})
    sidecar_path(engine).write_text(json.dumps(record))
    return engine


@pytest.mark.skipif(not NO_ENGINE_HERE, reason="checks the refusal on a machine that cannot build engines")
def test_diff_of_an_engine_says_what_it_needs_here(stage1, test_npz, tmp_path):
    """edgekit diff rebuilds an engine from its ONNX with the layers marked as outputs: without a GPU it is
    refused naming the ONNX to diff instead, and an engine whose ONNX changed or went is refused naming it."""
    from edgekit.layerdiff import diff
    from edgekit.sidecar import sidecar_path

    built = stage1["digits_cnn", "tensorrt-int8"].artifact
    onnx_file = tmp_path / "model.onnx"
    shutil.copy(built, onnx_file)
    shutil.copy(sidecar_path(built), sidecar_path(onnx_file))
    engine = _engine_beside(onnx_file)
    with pytest.raises(UsageError, match="this machine cannot build engines") as info:
        diff(engine, test_npz, reference="edgekit_demo.zoo:digits_cnn", reference_inputs=IMAGE)
    assert "edgekit diff model.onnx" in info.value.hint and info.value.exit_code == 2
    onnx_file.write_bytes(onnx_file.read_bytes() + b"\0")
    with pytest.raises(UsageError, match="was built from model.onnx, which is not beside it as it was"):
        diff(engine, test_npz, reference="edgekit_demo.zoo:digits_cnn", reference_inputs=IMAGE)
    bare = tmp_path / "elsewhere.plan"
    bare.write_bytes(b"an engine without its sidecar")
    with pytest.raises(UsageError, match="has no sidecar naming the ONNX it was built from"):
        diff(bare, test_npz, reference="edgekit_demo.zoo:digits_cnn", reference_inputs=IMAGE)


@gpu
@pytest.mark.gpu
@pytest.mark.tensorrt
def test_diff_reads_every_layer_of_an_engine_built_here(stage1, cnn, test_npz):
    """Runs unchanged on a machine with an NVIDIA GPU: the int8 engine's layers, read from the engine rebuilt
    with them marked, match the source's, and the rebuilt engine's outputs are compared with the shipped one's."""
    from edgekit.layerdiff import diff

    engine = build_engine(stage1["digits_cnn", "tensorrt-int8"].artifact)
    report = diff(engine, test_npz, reference="edgekit_demo.zoo:digits_cnn", reference_weights=cnn[1],
                  reference_inputs=IMAGE, samples=16)  # fmt: skip
    assert report.runtime == "tensorrt" and len(report.layers) >= 4
    assert any("marked as outputs" in note for note in report.notes)
    assert all(layer.quantization != "float" for layer in report.layers)
