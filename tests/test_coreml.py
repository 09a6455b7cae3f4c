"""Core ML targets: the digits CNN converted with coremltools to all four (fp32, fp16, int8 weights, palettized),
each package published whole with the facts read back from its saved program; what Linux cannot do (predict)
refused with how to do it; bad options and an op coremltools lacks refused before anything is written."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from helpers import run_cli, ssh_device_args

from edgekit.checksum import sha256_path, size_of
from edgekit.cli import main
from edgekit_demo import zoo

pytest.importorskip("coremltools")

TARGETS = ["coreml-fp32", "coreml-fp16", "coreml-int8", "coreml-palettized"]
ON_MAC = sys.platform == "darwin"


def _export_argv(cnn, out: Path, target: str, *extra: str) -> list[str]:
    _, weights = cnn
    return ["export", "edgekit_demo.zoo:digits_cnn", "--weights", str(weights), "--input", zoo.DIGITS_INPUT,
            "-t", target, "-o", str(out), *extra]  # fmt: skip


def _exit_code(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as done:
        main(argv)
    return int(done.value.code or 0)


@pytest.fixture(scope="module")
def exported(cnn, tmp_path_factory) -> dict[str, Path]:
    """Every Core ML target of the digits CNN, through the CLI."""
    out = tmp_path_factory.mktemp("coreml")
    for target in TARGETS:
        assert _exit_code(_export_argv(cnn, out, target)) == 0, target
    return {t: out / f"digits_cnn-{t}.mlpackage" for t in TARGETS}


def _sidecar(package: Path) -> dict:
    return json.loads(package.with_name(package.stem + ".edgekit.json").read_text())


@pytest.mark.parametrize("target", TARGETS)
def test_each_target_publishes_the_package_folder_whole(target, exported):
    package = exported[target]
    assert (package / "Manifest.json").is_file()
    assert (package / "Data" / "com.apple.CoreML" / "model.mlmodel").is_file()
    assert (package / "Data" / "com.apple.CoreML" / "weights" / "weight.bin").is_file()
    sidecar = _sidecar(package)
    assert sidecar["runtime"] == "coreml" and sidecar["file"] == package.name
    assert sidecar["sha256"] == sha256_path(package) and sidecar["size_bytes"] == size_of(package)
    assert sidecar["tools"]["coremltools"].startswith("9.")
    assert not [p for p in package.parent.iterdir() if p.name.startswith(".edgekit-tmp")]  # staging cleaned up
    (image,) = sidecar["tensors"]["inputs"]
    assert image["name"] == "image" and image["dtype"] == "float32" and image["shape"] == ["batch", 1, 8, 8]


def _facts(package: Path) -> dict:
    """The read-back facts of the last step that wrote the package (the quantizer's, else the converter's)."""
    sidecar = _sidecar(package)
    quantization = sidecar["quantization"]
    return quantization if "weights" in quantization else sidecar["route"][-1]


def test_the_sidecar_reads_back_precision_target_ops_and_weight_bits(exported):
    fp32, fp16 = _facts(exported["coreml-fp32"]), _facts(exported["coreml-fp16"])
    int8, palettized = _facts(exported["coreml-int8"]), _facts(exported["coreml-palettized"])
    for facts in (fp32, fp16, int8, palettized):
        assert facts["specification_version"] == 7 and facts["deployment_target"] == {
            "iOS": "iOS16",
            "macOS": "macOS13",
        }
        assert facts["ops"]["conv"] == 2 and facts["ops"]["linear"] == 2
        assert facts["read_back"] == "inputs and outputs match the source by name"
    assert fp32["compute_precision"] == "float32" and set(fp32["weights"]) == {"float32"}
    assert fp16["compute_precision"] == "float16" and set(fp16["weights"]) == {"float16"}
    assert _sidecar(exported["coreml-fp16"])["quantization"]["applied"] == "fp16"
    # the two weights over 2,048 elements (conv 2 and the first linear) are compressed; the small ones stay float
    assert int8["weights"]["int8"] == {"tensors": 2, "elements": 37376, "op": "constexpr_affine_dequantize"}
    assert int8["method"] == "coremltools.optimize.coreml.linear_quantize_weights" and int8["applied"] == "weight-only"
    assert palettized["weights"]["palettized_6bit"]["tensors"] == 2
    assert palettized["mode"] == "kmeans" and palettized["nbits"] == 6 and palettized["applied"] == "palettized"
    # what is checked where Core ML cannot run: each compressed weight decompressed against its float value
    assert int8["weights_checked"]["compressed"] == 2 and int8["weights_checked"]["max_relative_error"] < 0.01
    assert palettized["weights_checked"]["compressed"] == 2 and palettized["weights_checked"]["min_cosine"] > 0.999


def test_compressed_packages_are_smaller(exported):
    size = {t: size_of(p) for t, p in exported.items()}
    assert size["coreml-fp16"] < 0.55 * size["coreml-fp32"]
    assert size["coreml-int8"] < 0.4 * size["coreml-fp32"]
    assert size["coreml-palettized"] < size["coreml-int8"] < size["coreml-fp16"]


@pytest.mark.skipif(ON_MAC, reason="on macOS the export measures parity")
def test_off_macos_the_sidecar_says_parity_was_not_measured_and_what_was_checked(exported):
    sidecar = _sidecar(exported["coreml-palettized"])
    assert sidecar["parity"]["passed"] is False and "macOS and iOS only" in sidecar["parity"]["not_measured"]
    (warning,) = [w for w in sidecar["warnings"] if w.startswith("parity was not measured")]
    assert "Checked here instead" in warning and "decompressed" in warning
    assert not any("generated random inputs" in w for w in sidecar["warnings"])  # no parity ran at all


def test_an_ios_bundle_carries_the_package_whole_and_android_refuses_it(exported, tmp_path, capsys):
    package = exported["coreml-int8"]
    code, text = run_cli(capsys, "bundle", package, "--platform", "ios", "-o", tmp_path / "ios")
    assert code == 0, text
    (folder,) = (tmp_path / "ios").iterdir()
    manifest = json.loads((folder / "manifest.json").read_text())
    listed = {f["path"] for f in manifest["files"]}
    inside = {p.relative_to(package.parent).as_posix() for p in package.rglob("*") if p.is_file()}
    assert len(inside) >= 3 and {f"models/{name}" for name in inside} <= listed  # every file of the package
    (model,) = manifest["models"]
    if not ON_MAC:
        parity = model["provenance"]["parity"]
        assert parity["passed"] is False and "macOS and iOS only" in parity["not_measured"]
    code, text = run_cli(capsys, "bundle", package, "--platform", "android", "-o", tmp_path / "android")
    assert code == 2 and "android" in text and "Traceback" not in text


def test_palettize_bits_is_an_export_flag(cnn, tmp_path, capsys):
    code, out = run_cli(capsys, *_export_argv(cnn, tmp_path, "coreml-palettized", "--palettize-bits", "4"))
    assert code == 0, out
    if not ON_MAC:
        assert "parity not measured here" in out and "macOS and iOS only" in out
    facts = _facts(tmp_path / "digits_cnn-coreml-palettized.mlpackage")
    assert facts["nbits"] == 4 and set(facts["weights"]) == {"palettized_4bit", "float16"}


@pytest.mark.skipif(ON_MAC, reason="Core ML runs here")
def test_evaluate_off_macos_says_where_it_runs(exported, test_npz, capsys):
    package = exported["coreml-fp32"]
    code, out = run_cli(capsys, "evaluate", package, "--data", test_npz)
    assert code == 2 and "Traceback" not in out
    assert "macOS and iOS only" in out and "--device ssh://user@mac" in out and "Checked here instead" in out


@pytest.mark.slow  # the worker imports coremltools over ssh (30 s); the generic path is fast in test_evaluate_on_device
@pytest.mark.ssh
@pytest.mark.skipif(ON_MAC, reason="loopback is a Mac: Core ML runs there")
def test_evaluate_on_a_device_runs_the_package_there_and_a_linux_one_refuses_it(exported, test_npz, sshd, capsys):
    """The way a Mac is reached from Linux (the worker predicts with coremltools there), here against a Linux
    device, whose worker refuses the package as a file its runtime cannot run (exit 2), saying how."""
    code, out = run_cli(capsys, "evaluate", exported["coreml-fp16"], "--data", test_npz, *ssh_device_args(sshd))
    assert code == 2 and "Traceback" not in out
    assert "the runtime cannot load it" in out and "macOS and iOS only" in out and "--device ssh://user@mac" in out


@pytest.mark.slow  # the worker imports coremltools over ssh (30 s); the generic path is fast in test_evaluate_on_device
@pytest.mark.ssh
@pytest.mark.skipif(ON_MAC, reason="loopback is a Mac: Core ML runs there")
def test_export_with_parity_on_a_device_that_cannot_run_the_package_writes_nothing(cnn, sshd, tmp_path, capsys):
    """--run-on a Mac measures the package's parity there; a Linux device refuses it, and the export stops (exit 2)
    with nothing published, never a package whose parity was asked for and not measured."""
    run_on = ssh_device_args(sshd, device="--run-on")
    code, out = run_cli(capsys, *_export_argv(cnn, tmp_path / "out", "coreml-fp16", *run_on))
    assert code == 2 and "the runtime cannot load it" in out and "macOS and iOS only" in out
    assert not list((tmp_path / "out").glob("*.mlpackage")) and not list((tmp_path / "out").glob("*.json"))


@pytest.mark.skipif(ON_MAC, reason="Core ML runs here")
def test_benchmark_off_macos_says_where_it_runs(exported, capsys):
    code, out = run_cli(capsys, "benchmark", exported["coreml-int8"], "--processes", "1", "--min-runs", "1")
    assert code == 2 and "Traceback" not in out
    assert "macOS and iOS only" in out and "--device ssh://user@mac" in out


def test_a_deployment_target_coremltools_lacks_is_refused_by_name(cnn, tmp_path, capsys):
    out_dir = tmp_path / "out"
    code, out = run_cli(capsys, *_export_argv(cnn, out_dir, "coreml-fp16", "--deployment-target", "iOS99"))
    assert code == 2 and "iOS99" in out and "iOS18" in out and "Traceback" not in out
    assert not out_dir.exists() or not any(out_dir.iterdir())


def test_a_palettization_mode_coremltools_lacks_is_refused_by_name(cnn, tmp_path, capsys):
    out_dir = tmp_path / "out"
    code, out = run_cli(capsys, *_export_argv(cnn, out_dir, "coreml-palettized", "--palettize-mode", "sharpest"))
    assert code == 2 and "sharpest" in out and "kmeans" in out and "Traceback" not in out
    assert not out_dir.exists() or not any(out_dir.iterdir())


def test_an_op_coremltools_cannot_convert_is_named(tmp_path, capsys):
    import torch

    class Bessel(torch.nn.Module):
        def forward(self, x):
            return torch.special.i0(x).flatten(1)  # coremltools has no conversion for aten::i0

    source = tmp_path / "bessel.pt"
    torch.jit.save(torch.jit.trace(Bessel(), torch.randn(1, 1, 8, 8)), str(source))
    out_dir = tmp_path / "out"
    code, out = run_cli(capsys, "export", source, "--input", "x:float32:1x1x8x8", "-t", "coreml-fp32", "-o", out_dir)
    assert code == 2 and "'i0'" in out and "coremltools" in out and "Traceback" not in out
    assert not out_dir.exists() or not any(out_dir.iterdir())


def test_a_bert_encoder_converts_with_a_flexible_batch_and_int8_weights(tmp_path, capsys):
    """A Hugging Face BERT (transformers' attention mask: a traced int() of a one-element constant, which
    coremltools 9.0 refuses under NumPy 2.4, and aten::new_ones, which it lacks) through the CLI to coreml-fp16 and
    coreml-int8, each package whole with its ops and weights read back."""
    from edgekit_demo.zoo_text import TINY_BERT_INPUTS

    inputs = [arg for spec in TINY_BERT_INPUTS for arg in ("--input", spec)]
    facts = {}
    for target in ("coreml-fp16", "coreml-int8"):
        code, out = run_cli(capsys, "export", "edgekit_demo.zoo_text:tiny_bert_sentiment", *inputs, "-t", target,
                            "-o", tmp_path)  # fmt: skip
        assert code == 0, out
        package = tmp_path / f"tiny_bert_sentiment-{target}.mlpackage"
        assert (package / "Manifest.json").is_file()
        assert (package / "Data" / "com.apple.CoreML" / "weights" / "weight.bin").is_file()
        sidecar = _sidecar(package)
        assert sidecar["sha256"] == sha256_path(package) and sidecar["size_bytes"] == size_of(package)
        assert [(t["name"], t["dtype"], t["shape"]) for t in sidecar["tensors"]["inputs"]] == [
            ("input_ids", "int64", ["batch", 32]),
            ("attention_mask", "int64", ["batch", 32]),
        ]
        facts[target] = _facts(package)
        assert facts[target]["read_back"] == "inputs and outputs match the source by name"
        ops = facts[target]["ops"]
        assert ops["linear"] == 13 and ops["softmax"] == 2 and ops["gelu"] == 2 and ops["layer_norm"] == 5
        assert facts[target]["compute_precision"] == "float16"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".edgekit-tmp")]
    assert set(facts["coreml-fp16"]["weights"]) == {"float16"}
    # the 12 linear weights and the word embeddings are int8; the rest (biases, LayerNorms, the head) stay float16
    assert facts["coreml-int8"]["weights"]["int8"]["tensors"] == 13
    assert facts["coreml-int8"]["weights_checked"]["compressed"] == 13
    assert facts["coreml-int8"]["weights_checked"]["min_cosine"] > 0.99


def test_a_folder_that_is_no_package_is_refused(tmp_path, capsys):
    fake = tmp_path / "empty.mlpackage"
    fake.mkdir()
    from edgekit.backends.coreml import describe_io
    from edgekit.errors import ModelLoadError

    with pytest.raises(ModelLoadError, match="no Manifest.json"):
        describe_io(fake, None)  # type: ignore[arg-type]


@pytest.mark.skipif(not ON_MAC, reason="Core ML predicts on macOS only")
def test_the_packages_predict_like_the_source_on_macos(exported, cnn, digits):
    import numpy as np
    import torch

    from edgekit.dispatch import open_runner

    model, _ = cnn
    _, _, x_test, _ = digits
    with torch.no_grad():
        want = model(torch.from_numpy(x_test[:64])).numpy()
    for target, package in exported.items():
        with open_runner(package) as runner:
            (got,) = runner.infer({"image": x_test[:64]}).values()
        agree = float((got.argmax(-1) == want.argmax(-1)).mean())
        assert agree >= 0.95, (target, agree)
        if target == "coreml-fp32":
            np.testing.assert_allclose(got, want, atol=1e-3)
