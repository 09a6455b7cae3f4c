"""Models used by the tests only (importable as `tests_models:NAME` SOURCEs: tests/ is on sys.path)."""
from __future__ import annotations

import torch


class Unscriptable(torch.nn.Module):
    """torch.jit.script rejects **kwargs unpacking in forward; tracing records it fine."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(64, 10)

    def forward(self, image):
        options = {"start_dim": 1}
        return self.linear(torch.flatten(image, **options))


def unscriptable():
    torch.manual_seed(0)
    return Unscriptable()
