"""Shared fixtures: real digits data and small models trained on it (seconds), built once per session."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def digits():
    from edgekit_demo import zoo

    return zoo.digits_split()


@pytest.fixture(scope="session")
def sshd(tmp_path_factory):
    """A real OpenSSH server on 127.0.0.1 (the ssh tests' device)."""
    from sshd import SSHD, LoopbackSshd

    if not Path(SSHD).exists():
        pytest.skip("openssh-server is not installed (make test installs it where it can)")
    server = LoopbackSshd(tmp_path_factory.mktemp("sshd")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def calib_npz(digits, workdir) -> Path:
    """256 real training images, NCHW, named after the torch models' input."""
    x_train, y_train, _, _ = digits
    path = workdir / "calib.npz"
    np.savez(path, image=x_train[:256], labels=y_train[:256])
    return path


@pytest.fixture(scope="session")
def test_npz(digits, workdir) -> Path:
    _, _, x_test, y_test = digits
    path = workdir / "test.npz"
    np.savez(path, image=x_test, labels=y_test)
    return path


def _trained(factory_name: str, digits, workdir: Path, epochs: int):
    import torch

    from edgekit_demo import zoo

    x_train, y_train, _x_test, _y_test = digits
    torch.manual_seed(0)  # the same initial weights whatever ran before
    model = zoo.train(getattr(zoo, factory_name)(), x_train, y_train, epochs=epochs)
    weights = zoo.save_weights(model, workdir / f"{factory_name}.pt")
    return model, weights


@pytest.fixture(scope="session")
def mlp(digits, workdir):
    return _trained("digits_mlp", digits, workdir, epochs=6)


@pytest.fixture(scope="session")
def cnn(digits, workdir):
    return _trained("digits_cnn", digits, workdir, epochs=4)


@pytest.fixture(scope="session")
def transformer(digits, workdir):
    return _trained("tiny_transformer", digits, workdir, epochs=10)


@pytest.fixture
def pipeline(cnn, tmp_path):
    """The shipped example pipeline, copied with the tests' trained CNN as its weights."""
    root = Path(__file__).resolve().parent.parent / "examples"
    for name in ("digits-pipeline.yaml", "digits-labels.txt"):
        shutil.copyfile(root / name, tmp_path / name)
    shutil.copyfile(cnn[1], tmp_path / "digits_cnn.pt")
    return tmp_path / "digits-pipeline.yaml"


@pytest.fixture(scope="session")
def mobile_block(digits, tmp_path_factory):
    """A MobileNet-style Keras model (conv, batch norm, ReLU6, depthwise, pointwise with swish, dense) trained on
    the digits, and 256 training images to calibrate with."""
    import keras

    x_train, y_train, _, _ = digits
    x = x_train.transpose(0, 2, 3, 1)
    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 1), name="image")
    # no bias before a batch norm, as in MobileNets: tf2onnx folds the stem's batch norm into it (not dw's)
    h = keras.layers.BatchNormalization()(keras.layers.Conv2D(16, 3, name="stem", use_bias=False)(inp))
    h = keras.layers.ReLU(6.0)(h)
    h = keras.layers.BatchNormalization()(keras.layers.DepthwiseConv2D(3, name="dw", use_bias=False)(h))
    h = keras.layers.ReLU(6.0)(h)
    h = keras.layers.BatchNormalization()(keras.layers.Conv2D(24, 1, name="pw", activation="swish")(h))
    h = keras.layers.GlobalAveragePooling2D()(h)
    model = keras.Model(inp, keras.layers.Dense(10, name="head")(h))
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y_train, epochs=4, batch_size=32, verbose=0)
    folder = tmp_path_factory.mktemp("keras-fallback")
    model.save(folder / "mobile.keras")
    np.savez(folder / "calib.npz", image=x[:256])
    return folder / "mobile.keras", folder / "calib.npz"
