"""Models used by the tests only (importable as `tests_models:NAME` SOURCEs: tests/ is on sys.path)."""

from __future__ import annotations

import torch


class Unscriptable(torch.nn.Module):
    """torch.jit.script rejects **kwargs unpacking (in a method forward calls, so scripting fails after
    forward is defined); tracing records it fine."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(64, 10)

    def flatten(self, image):
        options = {"start_dim": 1}
        return torch.flatten(image, **options)

    def forward(self, image):
        return self.linear(self.flatten(image))


def unscriptable():
    torch.manual_seed(0)
    return Unscriptable()


def python_branch_keras():
    """A subclassed Keras model with a Python `if` on a tensor value: runs eagerly, cannot be traced."""
    import keras
    import numpy as np

    @keras.saving.register_keras_serializable("edgekit_tests")
    class PythonBranch(keras.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.dense = keras.layers.Dense(3)

        def call(self, x):
            if float(keras.ops.max(x)) > 100:  # needs the value: fine eagerly, impossible in a graph
                x = x / 100
            return self.dense(x)

    model = PythonBranch()
    model(np.zeros((1, 8), np.float32))
    return model


class DataDependent(torch.nn.Module):
    """Branches on a tensor's value: torch.export cannot capture it (tracing would record one path)."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(64, 10)

    def forward(self, image):
        x = torch.flatten(image, 1)
        if x.sum() > 0:
            x = x * 2
        return self.linear(x)


def data_dependent():
    torch.manual_seed(0)
    return DataDependent()


class ReadsItsLayer(DataDependent):
    """Reads its layer's weight as Hugging Face's ViT does (casting its input to `projection.weight.dtype`)."""

    def forward(self, image):
        return super().forward(image.to(self.linear.weight.dtype))


def reads_its_layer():
    torch.manual_seed(0)
    return ReadsItsLayer()


class LstmBranch(torch.nn.Module):
    """An LSTM reading the image's rows, with a Python branch on a value: FX cannot trace it and it has no
    Linear/Conv layer, so static int8 is not possible in either of PyTorch Mobile's ways."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = torch.nn.LSTM(8, 10, batch_first=True)

    def forward(self, image):
        out, _ = self.lstm(image[:, 0])
        if out.sum() > 1e9:
            out = out * 0.5
        return out[:, -1]


def lstm_branch():
    torch.manual_seed(0)
    return LstmBranch()


def hardwired_cnn():
    """A CNN whose forward hard-wires its feature count: structured pruning breaks it where it runs."""
    import torch

    class HardWired(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 16, 3, padding=1)
            self.head = torch.nn.Linear(16 * 8 * 8, 10)

        def forward(self, image):
            features = torch.relu(self.conv(image))
            return self.head(features.view(-1, 16 * 8 * 8))

    return HardWired()


def no_tflite_route():
    """A model no route takes to TFLite: singular values have no ONNX op and no TFLite lowering."""

    class SingularValues(torch.nn.Module):
        def forward(self, image):
            return torch.linalg.svdvals(image.reshape(image.shape[0], 8, 8))

    return SingularValues().eval()
