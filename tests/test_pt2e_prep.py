"""The float rewrites before PT2E static int8 (litert-torch's tflite-int8): SmoothQuant folded into parameters or a
float multiply, per-channel output ranges, int8 embedding tables; each exact in float."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgekit.backends.onnxruntime.smooth import Int8Grid  # noqa: E402
from edgekit.backends.pt2e import capture  # noqa: E402
from edgekit.backends.pt2e_prep import ADDED, int8_tables, prepare  # noqa: E402
from edgekit.data import Dataset  # noqa: E402

SEQ, HIDDEN, HEADS = 8, 16, 2
GRID = Int8Grid(activation_symmetric=False, weight_qmax=127)


class _Block(torch.nn.Module):
    """LayerNorm -> attention (its output read by a projection) with a residual; a second LayerNorm read only by
    a feed-forward layer; outlier channels planted in both norms and in the last layer's output."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.norm, self.norm2 = torch.nn.LayerNorm(HIDDEN), torch.nn.LayerNorm(HIDDEN)
        self.q, self.k, self.v, self.out = (torch.nn.Linear(HIDDEN, HIDDEN) for _ in range(4))
        self.ff, self.ff2 = torch.nn.Linear(HIDDEN, 2 * HIDDEN), torch.nn.Linear(2 * HIDDEN, HIDDEN)
        with torch.no_grad():
            self.norm.weight[3] = 40.0
            self.norm2.weight[5] = 60.0
            self.v.weight[[1, 9]] *= 30
            self.ff2.weight[2] *= 50
            self.ff2.bias[2] = 20.0

    def _heads(self, x):
        return x.view(1, SEQ, HEADS, HIDDEN // HEADS).transpose(1, 2)

    def forward(self, x):
        h = self.norm(x)
        q, k, v = self._heads(self.q(h)), self._heads(self.k(h)), self._heads(self.v(h))
        a = torch.nn.functional.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(1, SEQ, HIDDEN)
        h = h + self.out(a)  # the residual reads the first norm's output: its division needs a multiply
        return self.ff2(torch.relu(self.ff(self.norm2(h))))


def _data(n: int = 24) -> Dataset:
    x = np.random.default_rng(1).normal(size=(n, 1, SEQ, HIDDEN)).astype(np.float32)
    return Dataset({"x": x[:, 0]}, None, "test", "0")


def _captured(module):
    data = _data()
    return capture(torch, module, (torch.from_numpy(data.arrays["x"][:1]),), "block").module(), data


def test_prepare_is_exact_in_float_and_marks_its_multiplies_float():
    """Smoothing folds into the second norm, needs a multiply after the first norm (the residual reads it) and
    before the attention's output projection, and the outlier output channels get their own ranges: the graph
    computes what it did, and every node added is marked for the quantizer to leave float."""
    graph_module, data = _captured(_Block().eval())
    x = torch.from_numpy(data.arrays["x"][:4])
    with torch.inference_mode():
        before = torch.cat([graph_module(x[i : i + 1]) for i in range(4)])
    original = {n: p.detach().clone() for n, p in graph_module.named_parameters()}
    rewritten, notes = prepare(torch, graph_module, data, ["x"], GRID)
    assert "undone" not in notes, notes
    smoothing, ranges = notes["smoothing"], notes["output_ranges"]
    # the second norm's division folded; the first norm's and the attention output's multiplies
    assert smoothing["groups"] == smoothing["smoothed"] == 3 and smoothing["folded_into_parameters"] == 1, notes
    assert ranges["balanced"] >= 1, notes
    with torch.inference_mode():
        after = torch.cat([rewritten(x[i : i + 1]) for i in range(4)])
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-4)
    added = [n for n in rewritten.graph.nodes if n.meta.get(ADDED)]
    assert len(added) == ranges["balanced"] + smoothing["smoothed"] - smoothing["folded_into_parameters"]
    assert all(str(n.target) == "aten.mul.Tensor" for n in added)
    changed = {n for n, p in rewritten.named_parameters() if not torch.equal(p, original[n])}
    assert "norm2.weight" in changed  # the division folded there
    assert not {"norm.weight", "norm.bias"} & changed  # the residual reads the first norm's output as it was
    assert all(torch.equal(p, original[n]) for n, p in graph_module.named_parameters())  # the input is untouched


def test_a_graph_without_outliers_is_left_alone():
    """Nothing to migrate and no uneven outputs: no multiply is added (each costs an op at run time)."""

    class Plain(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.norm, self.fc = torch.nn.LayerNorm(HIDDEN), torch.nn.Linear(HIDDEN, HIDDEN)

        def forward(self, x):
            h = self.norm(x)
            return h + self.fc(h)

    graph_module, data = _captured(Plain().eval())
    rewritten, notes = prepare(torch, graph_module, data, ["x"], GRID)
    assert notes["output_ranges"]["balanced"] == 0 and notes["smoothing"]["smoothed"] == 0, notes
    assert not [n for n in rewritten.graph.nodes if n.meta.get(ADDED)]


def test_large_embedding_tables_become_int8_and_look_up_within_half_a_step():
    class Embedder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.words, self.positions = torch.nn.Embedding(2000, 64), torch.nn.Embedding(16, 64)

        def forward(self, ids):
            return self.words(ids) + self.positions(torch.arange(ids.shape[1]))

    module = Embedder().eval()
    ids = torch.randint(0, 2000, (2, 16))
    with torch.inference_mode():
        before = module(ids)
        weight = module.words.weight.detach().clone()
    assert int8_tables(torch, module) == 1  # the 16-row position table stays float
    assert module.words.table.dtype == torch.int8 and isinstance(module.positions, torch.nn.Embedding)
    with torch.inference_mode():
        after = module(ids)
    half_step = (weight.abs().amax(dim=1) / 127 / 2)[ids]
    assert torch.all((after - before).abs() <= half_step[..., None] + 1e-6)
    assert module.words.table.element_size() * module.words.table.numel() == weight.numel()
