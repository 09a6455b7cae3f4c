"""Small models built in code and trained on real data (scikit-learn digits), for the demo and tests.

Each factory is importable as a SOURCE (`edgekit_demo.zoo:digits_cnn`) with `--weights`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgekit._lazy import require

DIGITS_INPUT = "image:float32:batchx1x8x8"


def digits_split(seed: int = 0, test_fraction: float = 0.25):
    """scikit-learn's 8x8 digits as float32 (N,1,8,8) in [0,1], split with a fixed seed."""
    datasets = require("sklearn.datasets", "The digits dataset")
    digits = datasets.load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None, :, :]
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = int(len(x) * test_fraction)
    test, train = order[:n_test], order[n_test:]
    return x[train], y[train], x[test], y[test]


def digits_rgb(side: int = 32, channels_last: bool = False):
    """The digits split, upscaled (nearest) to `side` x `side` RGB for models built for colour images:
    (N, 3, side, side), or (N, side, side, 3) with `channels_last`."""
    split = digits_upscaled(side)
    images = [x.repeat(3, axis=1) for x in split[0::2]]
    if channels_last:
        images = [np.ascontiguousarray(x.transpose(0, 2, 3, 1)) for x in images]
    return images[0], split[1], images[1], split[3]


def _nn():
    return require("torch", "The built-in torch models").nn


def digits_mlp():
    nn = _nn()
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))


def digits_cnn():
    nn = _nn()
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 4 * 4, 64),
        nn.ReLU(),
        nn.Linear(64, 10),
    )


def digits_residual_cnn():
    """A small CNN with what static int8 must carry between layers: a residual add, a concatenation and a mean."""
    torch = require("torch", "The built-in torch models")
    nn = torch.nn

    class ResidualCNN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Conv2d(1, 16, 3, padding=1)
            self.conv1, self.bn1 = nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16)
            self.conv2, self.bn2 = nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16)
            self.branch = nn.Conv2d(16, 8, 1)
            self.head = nn.Linear(24, 10)

        def forward(self, x):
            x = torch.relu(self.stem(x))
            y = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
            x = torch.relu(x + y)
            return self.head(torch.cat([x, self.branch(x)], dim=1).mean(dim=(2, 3)))

    return ResidualCNN()


def digits_mobilenet():
    """A MobileNet-style CNN for the digits upscaled to 32x32 (`digits_upscaled`): a strided stem, then inverted
    residual blocks (1x1 expand, 3x3 depthwise, 1x1 project; a residual add where the shape stays), a mean over
    the positions and a linear head. Enough arithmetic per call that int8 kernels, not call overhead, decide speed."""
    torch = require("torch", "The built-in torch models")
    nn = torch.nn

    class InvertedResidual(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int, expand: int = 4) -> None:
            super().__init__()
            hidden = cin * expand
            self.block = nn.Sequential(
                nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU(),
                nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden), nn.ReLU(),
                nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout),
            )  # fmt: skip
            self.residual = stride == 1 and cin == cout

        def forward(self, x):
            y = self.block(x)
            return x + y if self.residual else y

    class DigitsMobileNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(1, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
            widths = [(16, 16, 1), (16, 24, 2), (24, 24, 1), (24, 32, 2), (32, 32, 1)]
            self.blocks = nn.Sequential(*(InvertedResidual(*w) for w in widths))
            self.head = nn.Linear(32, 10)

        def forward(self, x):
            return self.head(self.blocks(self.stem(x)).mean(dim=(2, 3)))

    return DigitsMobileNet()


def digits_upscaled(side: int = 32):
    """The digits split with each 8x8 image upscaled (nearest) to `side` x `side`, one channel:
    (x_train, y_train, x_test, y_test)."""
    x, y, x_test, y_test = digits_split()
    factor = side // 8
    return x.repeat(factor, 2).repeat(factor, 3), y, x_test.repeat(factor, 2).repeat(factor, 3), y_test


def digits_small_cnn():
    """digits_cnn with a quarter of its channels and neurons: a student for distillation."""
    nn = _nn()
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(8 * 4 * 4, 32),
        nn.ReLU(),
        nn.Linear(32, 10),
    )


def tiny_transformer():
    """A one-layer transformer encoder reading each image row as a token (8 tokens of 8 pixels)."""
    torch = require("torch", "The built-in torch models")
    nn = torch.nn

    class TinyTransformer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Linear(8, 32)
            self.pos = nn.Parameter(torch.zeros(1, 8, 32))
            self.encoder = nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, batch_first=True)
            self.head = nn.Linear(32, 10)

        def forward(self, image):
            tokens = self.embed(image.reshape(image.shape[0], 8, 8)) + self.pos
            return self.head(self.encoder(tokens).mean(dim=1))

    return TinyTransformer()


def train(model, x: np.ndarray, y: np.ndarray, epochs: int = 8, lr: float = 3e-3, seed: int = 0):
    """A few epochs of Adam on (x, y); returns the model in eval mode."""
    torch = require("torch", "Training the built-in models")
    torch.manual_seed(seed)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(xt)).split(64):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx]).backward()
            optimizer.step()
    return model.eval()


def save_weights(model, path: Path) -> Path:
    torch = require("torch", "Saving weights")
    torch.save(model.state_dict(), path)
    return path


def keras_digits_cnn(x_train: np.ndarray, y_train: np.ndarray, epochs: int = 5, seed: int = 0, flavour: str = "keras"):
    """The Keras twin of digits_cnn, trained here: NHWC input 'image' (Keras' layout), logits out.

    x_train is digits_split()'s NCHW array; the model takes it transposed to (N, 8, 8, 1). flavour:
    "keras" (Keras 3) or "tf_keras" (what tensorflow-model-optimization prunes and quantizes).
    """
    keras = require(flavour, "The built-in Keras model")
    keras.utils.set_random_seed(seed)
    inp = keras.Input((8, 8, 1), name="image")
    h = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(inp)
    h = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(h)
    h = keras.layers.MaxPooling2D()(h)
    h = keras.layers.Dense(64, activation="relu")(keras.layers.Flatten()(h))
    model = keras.Model(inp, keras.layers.Dense(10)(h), name="keras_digits_cnn")
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x_train.transpose(0, 2, 3, 1), y_train, epochs=epochs, batch_size=32, verbose=0)
    return model
