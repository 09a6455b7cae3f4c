"""Release bundles: export -> evaluate -> benchmark -> bundle -> verify on the digits CNN, byte-identical
rebuilds, tampering and escaping paths caught, platform rules, a text model's tokenizer shipped."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pytest
from helpers import run_cli

from edgekit_demo import zoo

LABELS = "".join(f"{d}\n" for d in range(10))


@pytest.fixture(scope="module")
def released(cnn, calib_npz, test_npz, tmp_path_factory):
    """tflite-int8 and onnx-int8 files of the CNN, evaluated and benchmarked through the CLI's --json."""
    from edgekit.bench.harness import Settings, benchmark
    from edgekit.evaluation import evaluate
    from edgekit.exporter import export
    from edgekit.spec import parse_input_spec

    _, weights = cnn
    out = tmp_path_factory.mktemp("release")
    inputs = (parse_input_spec(zoo.DIGITS_INPUT),)
    files = [
        export("edgekit_demo.zoo:digits_cnn", t, out, calib=calib_npz, inputs=inputs, weights=weights).artifact
        for t in ("tflite-int8", "onnx-int8")
    ]
    (out / "eval.json").write_text(json.dumps(evaluate(files[0], test_npz).to_json()))
    runs, error = benchmark(files, "local", Settings(min_runs=20, min_time=0.05, warmup=2, processes=1))
    assert error is None
    (out / "bench.json").write_text(json.dumps(runs))
    (out / "labels.txt").write_text(LABELS)
    return {"files": files, "folder": out}


def _bundle(capsys, released, out, *extra):
    folder = released["folder"]
    return run_cli(
        capsys, "bundle", *released["files"], "--platform", "android", "--labels", folder / "labels.txt",
        "--results", folder / "eval.json", "--results", folder / "bench.json", "--version", "1.2.0", "-o", out, *extra,
    )  # fmt: skip


def test_round_trip_bundle_then_verify(released, tmp_path, capsys):
    code, out = _bundle(capsys, released, tmp_path)
    assert code == 0 and "app/src/main/assets/" in out, out
    root = tmp_path / "digits_cnn"
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["platform"] == "android" and manifest["version"] == "1.2.0" and manifest["labels"] == "labels.txt"
    tflite, onnx_model = manifest["models"]
    assert tflite["file"] == "models/digits_cnn-tflite-int8.tflite"
    assert tflite["quantization"]["applied"] == "full-integer"
    (image,) = tflite["inputs"]  # the app feeds the file's int8 tensor, with its quantization
    assert image["dtype"] == "int8" and image["scale"] > 0 and isinstance(image["zero_point"], int)
    assert tflite["evaluation"][0]["metrics"]["accuracy"] > 0.9 and tflite["evaluation"][0]["data"] == "test.npz"
    assert tflite["benchmark"][0]["latency_ms"]["p50"] > 0 and onnx_model["benchmark"] and not onnx_model["evaluation"]
    assert tflite["provenance"]["calibration"]["samples"] == 256 and tflite["provenance"]["parity"]["passed"]
    assert "/" not in json.dumps(tflite["provenance"]["source"])  # no paths of the build machine
    assert [f["path"] for f in manifest["files"]] == sorted(f["path"] for f in manifest["files"])
    code, out = run_cli(capsys, "verify", root)
    assert code == 0 and "3 files verified" in out, out


def test_a_second_build_is_byte_identical(released, tmp_path, capsys):
    for name in ("a.zip", "b.zip"):
        code, out = _bundle(capsys, released, tmp_path / name)
        assert code == 0, out
    assert (tmp_path / "a.zip").read_bytes() == (tmp_path / "b.zip").read_bytes()
    with zipfile.ZipFile(tmp_path / "a.zip") as z:
        names = [i.filename for i in z.infolist()]
        assert names == sorted(names) and all(i.date_time == (1980, 1, 1, 0, 0, 0) for i in z.infolist())
        assert names[0].startswith("digits_cnn/")
    code, out = run_cli(capsys, "verify", tmp_path / "a.zip")
    assert code == 0, out


def test_tampering_is_named(released, tmp_path, capsys):
    _bundle(capsys, released, tmp_path)
    root = tmp_path / "digits_cnn"
    model = root / "models" / "digits_cnn-onnx-int8.onnx"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    (root / "labels.txt").unlink()
    (root / "models" / "extra.bin").write_bytes(b"\0")
    code, out = run_cli(capsys, "verify", root)
    assert code == 1, out
    assert "models/digits_cnn-onnx-int8.onnx: sha256 differs" in out
    assert "labels.txt: listed in the manifest but missing" in out
    assert "models/extra.bin: not listed in the manifest" in out


def test_a_tampered_zip_is_named(released, tmp_path, capsys):
    _bundle(capsys, released, tmp_path / "good.zip")
    with zipfile.ZipFile(tmp_path / "good.zip") as good, zipfile.ZipFile(tmp_path / "bad.zip", "w") as bad:
        for info in good.infolist():
            data = good.read(info)
            bad.writestr(info, data + b"x" if info.filename.endswith(".tflite") else data)
    code, out = run_cli(capsys, "verify", tmp_path / "bad.zip")
    assert code == 1 and "models/digits_cnn-tflite-int8.tflite:" in out and "tampered or cut" in out, out


def test_paths_that_leave_the_bundle_are_refused(released, tmp_path, capsys):
    _bundle(capsys, released, tmp_path)
    root = tmp_path / "digits_cnn"
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["files"][0]["path"] = "../outside.txt"
    (root / "manifest.json").write_text(json.dumps(manifest))
    code, out = run_cli(capsys, "verify", root)
    assert code == 1 and "'../outside.txt' is not a plain relative path" in out, out
    with zipfile.ZipFile(tmp_path / "slip.zip", "w") as z:
        z.writestr("digits_cnn/manifest.json", (tmp_path / "digits_cnn" / "manifest.json").read_text())
        z.writestr("digits_cnn/../../evil.txt", "x")
    code, out = run_cli(capsys, "verify", tmp_path / "slip.zip")
    assert code == 1 and "evil.txt" in out, out
    code, out = _bundle(capsys, released, tmp_path / "out2", "--name", "../evil")
    assert code == 2 and "--name '../evil' must be a plain file name" in out
    assert not (tmp_path / "evil").exists() and not (tmp_path / "out2").exists()


def test_platform_rules_and_missing_sidecars(released, cnn, calib_npz, tmp_path, capsys):
    from edgekit.exporter import export
    from edgekit.spec import parse_input_spec

    _, weights = cnn
    xml = export("edgekit_demo.zoo:digits_cnn", "openvino-int8", tmp_path / "ov", calib=calib_npz,
                 inputs=(parse_input_spec(zoo.DIGITS_INPUT),), weights=weights).artifact  # fmt: skip
    code, out = run_cli(capsys, "bundle", xml, "--platform", "android", "-o", tmp_path / "a")
    assert code == 2 and "openvino file; android apps embed" in out, out
    code, out = run_cli(capsys, "bundle", xml, "--platform", "generic", "-o", tmp_path / "g")
    assert code == 0, out
    manifest = json.loads((tmp_path / "g" / "digits_cnn" / "manifest.json").read_text())
    ir = ["models/digits_cnn-openvino-int8.xml", "models/digits_cnn-openvino-int8.bin"]
    assert manifest["models"][0]["files"] == ir
    lonely = tmp_path / "lonely.onnx"
    shutil.copyfile(released["files"][1], lonely)
    code, out = run_cli(capsys, "bundle", lonely, "-o", tmp_path / "x")
    assert code == 2 and "has no sidecar" in out
    other = tmp_path / "other.json"
    other.write_text(json.dumps([{"artifact": "/x/else.onnx", "latency_ms": {"p50": 1}}]))
    code, out = run_cli(capsys, "bundle", released["files"][1], "--results", other, "-o", tmp_path / "y")
    assert code == 2 and "has no result for the bundled files" in out


def test_a_text_model_ships_its_tokenizer_and_length(tmp_path, capsys):
    from edgekit.exporter import export
    from edgekit.spec import parse_input_specs
    from edgekit_demo.zoo_text import TINY_BERT_INPUTS, minilm_dir

    artifact = export("edgekit_demo.zoo_text:tiny_bert_sentiment", "onnx-fp32", tmp_path / "m",
                      inputs=parse_input_specs(TINY_BERT_INPUTS), tokenizer=minilm_dir()).artifact  # fmt: skip
    code, out = run_cli(capsys, "bundle", artifact, "--platform", "ios", "-o", tmp_path / "b")
    assert code == 0, out
    root = next((tmp_path / "b").iterdir())
    assert root.name.endswith(".bundle")
    pre = json.loads((root / "manifest.json").read_text())["models"][0]["preprocessing"]
    assert pre["tokenizer"] == "tokenizer" and "tokenizer/vocab.txt" in pre["tokenizer_files"]
    length = int(TINY_BERT_INPUTS[0].split("x")[-1])
    assert pre["max_length"] == length and pre["padding"] == "max_length" and pre["lowercase"] is True
    assert (root / "tokenizer" / "tokenizer.json").is_file()
    code, out = run_cli(capsys, "verify", root)
    assert code == 0, out


@pytest.mark.slow  # 43 s: five real steps three times; caching and re-running are in the fast suite (test_sweep)
def test_the_example_pipeline_runs_caches_and_redoes_only_what_changed(pipeline, capsys, digits):
    code, out = run_cli(capsys, "run", pipeline)
    assert code == 0 and "5 step(s) ran, 0 cached; every gate passed" in out, out
    bundle_dir = pipeline.parent / "release" / "digits"
    assert run_cli(capsys, "verify", bundle_dir)[0] == 0
    manifest = json.loads((bundle_dir / "manifest.json").read_text())
    assert [m["target"] for m in manifest["models"]] == ["tflite-int8", "onnx-int8"]
    assert all(m["evaluation"] and m["benchmark"] for m in manifest["models"])
    code, out = run_cli(capsys, "run", pipeline, "--executor", "serial")  # the cache serves any executor
    assert code == 0 and "0 step(s) ran, 5 cached" in out and out.count(": cached (") == 5, out
    # new weights: both exports, their evaluations and the benchmark run again
    import torch

    torch.manual_seed(1)
    x, y, _, _ = digits
    zoo.save_weights(zoo.train(zoo.digits_cnn(), x, y, epochs=1), pipeline.parent / "digits_cnn.pt")
    code, out = run_cli(capsys, "run", pipeline, "--executor", "serial")
    assert code == 0 and "5 step(s) ran, 0 cached" in out, out


@pytest.mark.slow  # 31 s: a whole pipeline run; the gates' own checks are in the fast suite
def test_a_failing_gate_exits_1_and_names_it(pipeline, capsys):
    pipeline.write_text(pipeline.read_text().replace("max_size_mb: 0.5", "max_size_mb: 0.001"))
    code, out = run_cli(capsys, "run", pipeline)
    assert code == 1 and "gate failed: tflite-int8: size" in out and "> max_size_mb 0.001" in out, out


@pytest.mark.parametrize(
    "edit, phrase",
    [
        (("[tflite-int8, onnx-int8]", "[tflite-int8, onnx-int9]"), "line 10: Unknown target 'onnx-int9'"),
        (("gates:", "gatez:"), "line 17: gatez: Extra inputs are not permitted"),
        (("processes: 3", "processes: many"), "line 15: benchmark.processes: Input should be a valid integer"),
        (("source: edgekit_demo.zoo:digits_cnn", "source: edgekit_demo.zoo:digits_cnn\ndevice: x86-avx3"),
         "Unknown device profile 'x86-avx3'"),
        (("targets:", "compress: {method: prune, data: builtin:digits:train}\ntargets:"),
         "line 10: compress: method prune needs sparsity"),
        (("targets:", "compress: {method: lowrank, data: builtin:digits:train}\ntargets:"),
         "line 10: compress: method lowrank needs one of rank_ratio"),
    ],
)  # fmt: skip
def test_a_bad_pipeline_is_refused_with_its_line(pipeline, capsys, edit, phrase):
    pipeline.write_text(pipeline.read_text().replace(*edit))
    code, out = run_cli(capsys, "run", pipeline)
    assert code == 2 and phrase in out and "Traceback" not in out, out
    assert not (pipeline.parent / "release").exists()


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def test_the_html_report_is_self_contained_and_marks_the_pareto_front(released, tmp_path, capsys):
    folder = released["folder"]
    code, out = run_cli(capsys, "report", folder / "eval.json", folder / "bench.json", "-o", tmp_path / "r.html")
    assert code == 0, out
    page = (tmp_path / "r.html").read_text()
    assert "<script" not in page and "http://" not in page.replace("http://www.w3.org", "")  # nothing fetched
    assert page.count("<tr") == 3 and page.count('class="box"') == 2  # header + 2 files; 2 latency boxes
    assert "digits_cnn-tflite-int8.tflite" in page and "<svg" in page


@pytest.mark.parametrize(
    "text, phrase",
    [('{"hello": 1}', "not a result edgekit writes"),
     ('{"pipeline": "p.yaml", "steps": [], "combinations": [1]}', "is not one edgekit wrote")],
)  # fmt: skip
def test_report_refuses_json_it_does_not_know(tmp_path, capsys, text, phrase):
    bad = tmp_path / "x.json"
    bad.write_text(text)
    code, out = run_cli(capsys, "report", bad, "-o", tmp_path / "r.html")
    assert code == 2 and phrase in out and "Traceback" not in out and not (tmp_path / "r.html").exists(), out


@pytest.mark.skipif(_chromium() is None, reason="needs Chromium (make test installs Debian's chromium where it can)")
def test_the_report_renders_in_headless_chromium_without_console_errors(released, tmp_path, capsys):
    import subprocess

    folder = released["folder"]
    run_cli(capsys, "report", folder / "eval.json", folder / "bench.json", "-o", tmp_path / "r.html")
    argv = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0",
            "--dump-dom", (tmp_path / "r.html").as_uri()]  # fmt: skip
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    dom = result.stdout
    assert '<table id="comparison">' in dom and dom.count('class="point"') == 1 and dom.count('class="box"') == 2
    console = [line for line in result.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert console == []


def test_a_relative_tokenizer_path_is_recorded_absolute(tmp_path, monkeypatch):
    """evaluate and bundle read the tokenizer from the sidecar wherever they run, not only where export ran."""
    import os

    from edgekit.exporter import export
    from edgekit.spec import parse_input_specs
    from edgekit_demo.zoo_text import TINY_BERT_INPUTS, minilm_dir

    monkeypatch.chdir(minilm_dir().parent)
    result = export("edgekit_demo.zoo_text:tiny_bert_sentiment", "onnx-fp32", tmp_path,
                    inputs=parse_input_specs(TINY_BERT_INPUTS), tokenizer=minilm_dir().name)  # fmt: skip
    recorded = result.sidecar["tokenizer"]
    assert os.path.isabs(recorded) and Path(recorded) == minilm_dir()


# the low-rank step's export is checked fast in test_compress; in a pipeline, in the slow suite
@pytest.mark.parametrize(
    "method, setting",
    [("prune", "sparsity: 0.5"), pytest.param("lowrank", "rank_ratio: 0.5", marks=pytest.mark.slow)],
)
def test_a_pipeline_compresses_before_it_exports_and_caches_that_too(pipeline, capsys, method, setting):
    text = pipeline.read_text().replace(
        "targets: [tflite-int8, onnx-int8]",
        f"compress: {{method: {method}, data: builtin:digits:train, {setting}, epochs: 1}}\ntargets: [onnx-int8]",
    )
    pipeline.write_text(text.replace("max_accuracy_drop: 1.0", "max_accuracy_drop: 5.0"))
    code, out = run_cli(capsys, "run", pipeline)
    assert code == 0 and f"compress ({method})" in out and "4 step(s) ran, 0 cached" in out, out
    manifest = json.loads((pipeline.parent / "release" / "digits" / "manifest.json").read_text())
    assert manifest["models"][0]["provenance"]["source"]["kind"] != "factory"  # the pruned model was exported
    code, out = run_cli(capsys, "run", pipeline)
    assert code == 0 and "0 step(s) ran, 4 cached" in out and f"compress ({method}): cached" in out, out
